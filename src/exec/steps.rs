//! Carrying out each kind of step.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use super::{io_err, ExecError, Executor};
use crate::check::{NetSpec, PruneSpec, Strategy};
use crate::data::batch::Order;
use crate::lottery::measure;
use crate::lottery::prune::{self, Masks};
use crate::nn::Layout;
use crate::plan::{MeasureKind, Payload, Plan, Step};
use crate::rng::stream;
use crate::train::{self, evaluate, fresh_state, Job, Split, State, TrainBackend};

/// Training examples the interpolation's train-data errors are measured on.
const TRAIN_EVAL_EXAMPLES: usize = 10_000;

impl<B: TrainBackend> Executor<B> {
    pub(super) fn run_step(&mut self, plan: &Plan, step: &Step) -> Result<(), ExecError> {
        let dir = self.step_dir(&step.key);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        match &step.payload {
            Payload::Init {
                network,
                recipe,
                seed,
                reinit,
            } => {
                let purpose = if *reinit { stream::REINIT } else { 0 };
                save(
                    &fresh_state(network, recipe, *seed, purpose),
                    &dir.join("state.ckpt"),
                )
            }
            Payload::Train {
                network,
                dataset,
                recipe,
                seed,
                copy,
                end,
                ..
            } => {
                let resume = dir.join("resume.ckpt");
                let state = match State::load(&resume) {
                    Ok(s) if s.iteration < *end => {
                        eprintln!("{}: resuming from iteration {}", step.label, s.iteration);
                        s
                    }
                    _ => self.output_state(plan, &step.inputs[0])?,
                };
                let order = Order {
                    seed: *seed,
                    copy: *copy,
                    batch: recipe.batch as usize,
                };
                self.train_segment(
                    network,
                    dataset,
                    recipe,
                    order,
                    state,
                    *end,
                    &step.checkpoints,
                    &dir,
                    &step.label,
                )
            }
            Payload::Prune {
                network,
                prune,
                level,
            } => {
                if let Some(iteration) = self.diverged_at(&step.inputs[0]) {
                    return Err(ExecError::Diverged {
                        step: step.label.clone(),
                        iteration,
                    });
                }
                let trained = self.output_state(plan, &step.inputs[0])?;
                let layout = Layout::of(network);
                let masks = if prune.strategy == Strategy::Snip {
                    self.snip_masks(plan, step, network, prune, *level, &trained)?
                } else {
                    let previous = previous_masks(&trained, &layout);
                    prune::next_mask(prune, &layout, &trained.params, &previous)
                };
                save_masks(&masks, &dir.join("state.ckpt"))
            }
            Payload::RandomPrune {
                scope,
                seed,
                exclude,
            } => {
                let like = self.load_masks(&step.inputs[0])?;
                let network = self.network_of(plan, &step.inputs[0]);
                let layout = Layout::of(&network);
                save_masks(
                    &prune::random_like(&like, &layout, *scope, *seed, exclude),
                    &dir.join("state.ckpt"),
                )
            }
            Payload::Rewind { iteration } => {
                let (mask, source) = match step.inputs.as_slice() {
                    [m, s] => (Some(m), s),
                    [s] => (None, s),
                    _ => unreachable!("the planner gives a rewind one or two inputs"),
                };
                let mut state = self.state_at(plan, source, *iteration)?;
                if let Some(m) = mask {
                    let masks = self.load_masks(m)?;
                    for (p, m) in state.params.iter_mut().zip(&masks) {
                        if let Some(m) = m {
                            p.iter_mut().zip(m).for_each(|(w, k)| *w *= k);
                        }
                    }
                    state.masks = masks;
                }
                // OpenLTH keeps only the weights at the rewind point: the optimizer starts afresh.
                state.steps = 0;
                state
                    .slots
                    .iter_mut()
                    .flatten()
                    .for_each(|v| v.iter_mut().for_each(|x| *x = 0.0));
                save(&state, &dir.join("state.ckpt"))
            }
            Payload::Evaluate { network, dataset } => {
                let state = self.output_state(plan, &step.inputs[0])?;
                if let Some(iteration) = self.diverged_at(&step.inputs[0]) {
                    let masks = previous_masks(&state, &Layout::of(network));
                    let result = json!({
                        "diverged_at": iteration,
                        "test_accuracy": null,
                        "test_loss": null,
                        "iteration": state.iteration,
                        "density": prune::density(&masks),
                    });
                    return write_json(&dir.join("result.json"), &result);
                }
                let data = self.dataset(dataset)?;
                let e =
                    evaluate::<B::InnerBackend>(network, &state, &data, Split::Test, &self.device)
                        .map_err(ExecError::Data)?;
                let layout = Layout::of(network);
                let masks = previous_masks(&state, &layout);
                let mut history: Vec<serde_json::Value> = crate::store::read_checked(
                    &self.step_dir(&step.inputs[0]).join("history.json"),
                )
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
                history.retain(|h| h["iteration"] != state.iteration);
                history.push(json!({ "iteration": state.iteration, "test_accuracy": e.accuracy, "test_loss": e.loss }));
                let best = history
                    .iter()
                    .max_by(|a, b| {
                        a["test_accuracy"]
                            .as_f64()
                            .unwrap_or(0.0)
                            .total_cmp(&b["test_accuracy"].as_f64().unwrap_or(0.0))
                    })
                    .cloned()
                    .unwrap_or_default();
                let result = json!({
                    "best_iteration": best["iteration"],
                    "best_accuracy": best["test_accuracy"],
                    "history": history,
                    "test_loss": e.loss,
                    "test_accuracy": e.accuracy,
                    "test_top5": e.top5,
                    "examples": e.examples,
                    "iteration": state.iteration,
                    "density": prune::density(&masks),
                    "layer_density": prune::layer_density(&layout, &masks),
                });
                write_json(&dir.join("result.json"), &result)
            }
            Payload::Measure {
                measure: kind,
                network,
                dataset,
            } => {
                let diverged = step.inputs[..2].iter().find_map(|k| self.diverged_at(k));
                if let Some(iteration) = diverged {
                    return write_json(
                        &dir.join("result.json"),
                        &json!({ "diverged_at": iteration }),
                    );
                }
                let a = self.output_state(plan, &step.inputs[0])?;
                let b = self.output_state(plan, &step.inputs[1])?;
                let layout = Layout::of(network);
                let result = match kind {
                    MeasureKind::StabilityPruning | MeasureKind::StabilityDataOrder => {
                        let masks = match step.inputs.get(2) {
                            Some(m) => self.load_masks(m)?,
                            None => prune::full_masks(&layout),
                        };
                        let (l2, angle) = stability(&layout, &a, &b, &masks);
                        json!({ "l2": l2, "angle": angle })
                    }
                    MeasureKind::Interpolation { points, train } => {
                        let data = self.dataset(dataset)?;
                        let mut test_errors = Vec::new();
                        let mut train_errors = Vec::new();
                        let alphas = measure::alphas(*points);
                        for &alpha in &alphas {
                            let mut s = a.clone();
                            s.params = measure::lerp(&a.params, &b.params, alpha);
                            s.buffers = measure::lerp(&a.buffers, &b.buffers, alpha);
                            let t = evaluate::<B::InnerBackend>(
                                network,
                                &s,
                                &data,
                                Split::Test,
                                &self.device,
                            )
                            .map_err(ExecError::Data)?;
                            test_errors.push(1.0 - t.accuracy);
                            if *train {
                                let t = evaluate::<B::InnerBackend>(
                                    network,
                                    &s,
                                    &data,
                                    Split::Train(TRAIN_EVAL_EXAMPLES),
                                    &self.device,
                                )
                                .map_err(ExecError::Data)?;
                                train_errors.push(1.0 - t.accuracy);
                            }
                        }
                        json!({
                            "alphas": alphas,
                            "test_errors": test_errors,
                            "barrier": measure::barrier(&test_errors),
                            "train_errors": train_errors,
                            "barrier_train": (*train).then(|| measure::barrier(&train_errors)),
                        })
                    }
                };
                write_json(&dir.join("result.json"), &result)
            }
            Payload::None => Ok(()),
        }
    }

    /// Trains `state` to `end`, writing `it_<N>.ckpt` at the step's checkpoints and
    /// `resume.ckpt` regularly, so that a killed run loses at most one interval.
    #[allow(clippy::too_many_arguments)]
    fn train_segment(
        &mut self,
        network: &NetSpec,
        dataset: &crate::check::DatasetSpec,
        recipe: &crate::check::RecipeSpec,
        order: Order,
        state: State,
        end: u64,
        checkpoints: &BTreeSet<u64>,
        dir: &Path,
        label: &str,
    ) -> Result<(), ExecError> {
        let data = self.dataset(dataset)?;
        let every = recipe.iterations_per_epoch.clamp(1, 1000);
        let mut points: BTreeSet<u64> = checkpoints.clone();
        points.extend((state.iteration + 1..end).filter(|i| i % every == 0));
        // Test evaluations asked for with `eval_every`, kept in history.json (resumable).
        let eval_every = recipe.eval_every.unwrap_or(0);
        if eval_every > 0 {
            points.extend((state.iteration..=end).filter(|i| i % eval_every == 0));
        }
        let history_path = dir.join("history.json");
        let mut history: Vec<serde_json::Value> = crate::store::read_checked(&history_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        history.retain(|h| {
            h["iteration"]
                .as_u64()
                .is_some_and(|i| i <= state.iteration)
        });
        let job = Job {
            net: network,
            recipe,
            data: data.clone(),
            order,
            end,
            checkpoints: points,
            progress: self.progress,
            label: label.to_string(),
        };
        let resume = dir.join("resume.ckpt");
        let device = self.device.clone();
        let result = train::train::<B>(&job, state, &self.device, |s| {
            if eval_every > 0
                && s.iteration % eval_every == 0
                && !history.iter().any(|h| h["iteration"] == s.iteration)
            {
                let e = evaluate::<B::InnerBackend>(network, s, &data, Split::Test, &device)
                    .map_err(|e| e.to_string())?;
                history.push(json!({ "iteration": s.iteration, "test_accuracy": e.accuracy, "test_loss": e.loss }));
                crate::store::write_checked(
                    &history_path,
                    serde_json::Value::from(history.clone())
                        .to_string()
                        .as_bytes(),
                )
                .map_err(|e| e.to_string())?;
            }
            if checkpoints.contains(&s.iteration) {
                s.save(&dir.join(format!("it_{}.ckpt", s.iteration)))
                    .map_err(|e| e.to_string())?;
            }
            if s.iteration < end {
                s.save(&resume).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        match result {
            Ok(_) => {}
            // Divergence is a result: the state as it stood becomes the step's output, marked.
            Err(train::TrainError::Diverged { iteration, state }) => {
                save(&state, &dir.join(format!("it_{end}.ckpt")))?;
                write_json(
                    &dir.join("diverged.json"),
                    &json!({ "iteration": iteration }),
                )?;
                eprintln!(
                    "warning[{}]: {label}: the loss is not finite at iteration {iteration}; recorded as diverged",
                    crate::diag::code::EXEC_DIVERGED
                );
            }
            Err(train::TrainError::Interrupted) => return Err(ExecError::Interrupted),
            Err(error) => {
                return Err(ExecError::Train {
                    step: label.to_string(),
                    error,
                })
            }
        }
        let _ = std::fs::remove_file(&resume);
        Ok(())
    }

    /// The state of `source` (an init or a train step) at `iteration`. A train step that was
    /// run without a checkpoint there is replayed from its nearest earlier checkpoint.
    fn state_at(&mut self, plan: &Plan, source: &str, iteration: u64) -> Result<State, ExecError> {
        let step = plan.get(source).expect("inputs are in the plan");
        let Payload::Train {
            network,
            dataset,
            recipe,
            seed,
            copy,
            start,
            ..
        } = &step.payload
        else {
            return self.output_state(plan, source);
        };
        let dir = self.step_dir(source);
        let wanted = dir.join(format!("it_{iteration}.ckpt"));
        if wanted.is_file() {
            return self.load_state(&wanted);
        }
        let earlier = (*start..iteration)
            .rev()
            .find(|i| dir.join(format!("it_{i}.ckpt")).is_file());
        let from = match earlier {
            Some(i) => self.load_state(&dir.join(format!("it_{i}.ckpt")))?,
            None => self.output_state(plan, &step.inputs[0])?,
        };
        let order = Order {
            seed: *seed,
            copy: *copy,
            batch: recipe.batch as usize,
        };
        let only: BTreeSet<u64> = [iteration].into();
        self.train_segment(
            network,
            dataset,
            recipe,
            order,
            from,
            iteration,
            &only,
            &dir,
            &format!("replay to {iteration} it"),
        )?;
        self.load_state(&wanted)
    }

    fn load_masks(&self, key: &str) -> Result<Masks, ExecError> {
        let s = self.load_state(&self.step_dir(key).join("state.ckpt"))?;
        Ok(s.params
            .into_iter()
            .map(|m| (!m.is_empty()).then_some(m))
            .collect())
    }

    fn network_of(&self, plan: &Plan, key: &str) -> NetSpec {
        match plan.get(key).map(|s| &s.payload) {
            Some(Payload::Prune { network, .. }) => (**network).clone(),
            _ => unreachable!("a random mask is made like a pruning step's mask"),
        }
    }

    /// SNIP: |weight × gradient| at initialisation on one batch, pruned `level` times.
    fn snip_masks(
        &mut self,
        plan: &Plan,
        step: &Step,
        network: &NetSpec,
        prune: &PruneSpec,
        level: u32,
        init: &State,
    ) -> Result<Masks, ExecError> {
        let (dataset, recipe, seed) = plan
            .steps
            .iter()
            .find_map(|s| match &s.payload {
                Payload::Train {
                    dataset,
                    recipe,
                    seed,
                    start: 0,
                    ..
                } if s.inputs.first() == step.inputs.first() => {
                    Some((dataset.clone(), recipe.clone(), *seed))
                }
                _ => None,
            })
            .expect("a SNIP mask's init starts a dense run");
        let data = self.dataset(&dataset)?;
        let order = Order {
            seed,
            copy: 0,
            batch: recipe.batch as usize,
        };
        let grads = train::gradients::<B>(network, &recipe, &data, order, init, &self.device)
            .map_err(ExecError::Data)?;
        let scores: Vec<Vec<f32>> = init
            .params
            .iter()
            .zip(&grads)
            .map(|(w, g)| w.iter().zip(g).map(|(a, b)| (a * b).abs()).collect())
            .collect();
        let layout = Layout::of(network);
        let mut masks = prune::full_masks(&layout);
        for _ in 0..level {
            masks = prune::next_mask(prune, &layout, &scores, &masks);
        }
        Ok(masks)
    }
}

/// The masks a state was trained under (all ones where it has none).
fn previous_masks(state: &State, layout: &Layout) -> Masks {
    layout
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.prunable.then(|| {
                state
                    .masks
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| vec![1.0; p.len()])
            })
        })
        .collect()
}

fn stability(layout: &Layout, a: &State, b: &State, masks: &Masks) -> (f64, f64) {
    let idx: Vec<usize> = layout.prunable();
    let pa: Vec<Vec<f32>> = idx.iter().map(|&i| a.params[i].clone()).collect();
    let pb: Vec<Vec<f32>> = idx.iter().map(|&i| b.params[i].clone()).collect();
    let ms: Vec<Option<&Vec<f32>>> = idx.iter().map(|&i| masks[i].as_ref()).collect();
    measure::distance(&pa, &pb, &ms)
}

fn save(state: &State, path: &Path) -> Result<(), ExecError> {
    state.save(path).map_err(io_err(path))
}

/// Masks are stored as a state whose parameters are the masks (empty where unmasked).
fn save_masks(masks: &Masks, path: &Path) -> Result<(), ExecError> {
    let state = State {
        iteration: 0,
        params: masks
            .iter()
            .map(|m| m.clone().unwrap_or_default())
            .collect(),
        buffers: Vec::new(),
        masks: vec![None; masks.len()],
        steps: 0,
        slots: vec![Vec::new(); masks.len()],
    };
    save(&state, path)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ExecError> {
    crate::store::write_checked(path, value.to_string().as_bytes()).map_err(io_err(path))
}
