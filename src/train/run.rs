//! The training loop.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{activation, Tensor, TensorData};

use super::optim::{self, Update};
use super::schedule::learning_rate;
use super::state::{download, DeviceState, State};
use super::TrainBackend;
use crate::check::{NetSpec, RecipeSpec};
use crate::data::batch::{batches, Batch, Order};
use crate::data::{DataError, Dataset};
use crate::nn::{forward, initial_values, Layout};
use crate::rng::Rng;

#[derive(Debug)]
pub enum TrainError {
    Data(DataError),
    /// A checkpoint could not be written.
    Save(String),
    /// The loss became NaN or infinite: found at `iteration` (checked every
    /// [`DIVERGENCE_CHECK`] iterations and at the last), with the state as it then stood.
    Diverged {
        iteration: u64,
        state: Box<State>,
    },
    /// The batch-preparing thread stopped unexpectedly.
    Loader,
    /// A stop was requested ([`super::stop`]); the state was saved first.
    Interrupted,
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Data(e) => write!(f, "{e}"),
            TrainError::Save(e) => write!(f, "cannot save a checkpoint: {e}"),
            TrainError::Diverged { iteration, .. } => {
                write!(f, "the loss is not finite at iteration {iteration}")
            }
            TrainError::Loader => write!(f, "the data loader stopped unexpectedly"),
            TrainError::Interrupted => write!(f, "interrupted"),
        }
    }
}

/// Iterations between two checks that the loss is finite.
pub const DIVERGENCE_CHECK: u64 = 10;

/// How to report progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Quiet,
    Bar,
}

/// One training segment: from the state's iteration to `end`, saving at `checkpoints`.
pub struct Job<'a> {
    pub net: &'a NetSpec,
    pub recipe: &'a RecipeSpec,
    pub data: Arc<Dataset>,
    pub order: Order,
    pub end: u64,
    pub checkpoints: BTreeSet<u64>,
    pub progress: Progress,
    /// Shown before the progress bar.
    pub label: String,
}

/// A run's state before its first step: initial weights, no masks, no optimizer state.
pub fn fresh_state(net: &NetSpec, recipe: &RecipeSpec, seed: u64, purpose: u64) -> State {
    let layout = Layout::of(net);
    let (params, buffers) = initial_values(&layout, recipe.init, seed, purpose);
    let n_slots = optim::slots(&recipe.optimizer);
    let slots = params
        .iter()
        .map(|p| vec![vec![0.0; p.len()]; n_slots])
        .collect();
    State {
        iteration: 0,
        masks: vec![None; params.len()],
        params,
        buffers,
        steps: 0,
        slots,
    }
}

/// The batch's images as the input tensor, moved out of the batch (not copied).
fn to_input<B: TrainBackend>(batch: &mut Batch, shape: &[u64], device: &B::Device) -> Tensor<B, 4> {
    let n = batch.size;
    let dims = match shape {
        [c, h, w] => [n, *c as usize, *h as usize, *w as usize],
        _ => [n, shape.iter().product::<u64>() as usize, 1, 1],
    };
    let images = std::mem::take(&mut batch.images);
    Tensor::from_data(TensorData::new(images, dims), device)
}

/// One-hot targets with label smoothing, `[n, classes]`.
fn targets<B: TrainBackend>(
    labels: &[i64],
    classes: usize,
    smoothing: f64,
    device: &B::Device,
) -> Tensor<B, 2> {
    let off = (smoothing / classes as f64) as f32;
    let on = (1.0 - smoothing) as f32 + off;
    let mut v = vec![off; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        v[i * classes + l as usize] = on;
    }
    Tensor::from_data(TensorData::new(v, [labels.len(), classes]), device)
}

fn cross_entropy<B: TrainBackend>(logits: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
    let n = logits.dims()[0] as f64;
    (activation::log_softmax(logits, 1) * targets).sum().neg() / n
}

/// One forward pass in training mode and its loss (auxiliary heads included).
struct StepOutput<B: TrainBackend> {
    /// The parameters as autodiff leaves, to read gradients from.
    params: Vec<Tensor<B, 1>>,
    loss: Tensor<B, 1>,
    logits: Tensor<B, 2>,
    buffers: Vec<Tensor<B, 1>>,
}

fn loss_of<B: TrainBackend>(
    net: &NetSpec,
    s: &DeviceState<B::InnerBackend>,
    batch: &mut Batch,
    data: &crate::check::DatasetSpec,
    smoothing: f64,
    dropout_seed: u64,
    device: &B::Device,
) -> StepOutput<B> {
    let x = to_input::<B>(batch, &data.shape, device);
    let y = targets::<B>(&batch.labels, data.classes as usize, smoothing, device);
    let params: Vec<Tensor<B, 1>> = s
        .params
        .iter()
        .map(|p| Tensor::from_inner(p.clone()).require_grad())
        .collect();
    let buffers: Vec<Tensor<B, 1>> = s
        .buffers
        .iter()
        .map(|b| Tensor::from_inner(b.clone()))
        .collect();
    let out = forward(net, &params, &buffers, x, Some(dropout_seed));
    let logits = out.logits.clone().detach();
    let mut loss = cross_entropy(out.logits, y.clone());
    for (w, aux) in out.aux {
        loss = loss + cross_entropy(aux, y.clone()) * w;
    }
    StepOutput {
        params,
        loss,
        logits,
        buffers: out.buffers,
    }
}

/// Share of a batch whose largest logit is the label.
fn batch_accuracy<B: burn::tensor::backend::Backend>(logits: &Tensor<B, 2>, labels: &[i64]) -> f64 {
    let [_, classes] = logits.dims();
    let values = logits
        .to_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default();
    let correct = values
        .chunks_exact(classes.max(1))
        .zip(labels)
        .filter(|(row, &l)| {
            row.iter()
                .enumerate()
                .all(|(j, &v)| v < row[l as usize] || j == l as usize)
        })
        .count();
    correct as f64 / labels.len().max(1) as f64
}

/// Trains from `state` to `job.end`; calls `save` with the state at every checkpoint iteration
/// reached (the end included, if asked). Returns the final state.
pub fn train<B: TrainBackend>(
    job: &Job,
    state: State,
    device: &B::Device,
    save: impl FnMut(&State) -> Result<(), String> + Send,
) -> Result<State, TrainError> {
    // With several threads the loop runs on one of a pool's, the others taking the kernels'
    // pieces (spinning, where the kernels run on the CPU).
    super::threads::run_with(rayon::current_num_threads(), B::SPLITS_ON_CPU, || {
        train_here::<B>(job, state, device, save)
    })
}

fn train_here<B: TrainBackend>(
    job: &Job,
    state: State,
    device: &B::Device,
    mut save: impl FnMut(&State) -> Result<(), String>,
) -> Result<State, TrainError> {
    crate::keep_freed_memory();
    let start = state.iteration;
    let layout = Layout::of(job.net);
    let mut s: DeviceState<B::InnerBackend> = DeviceState::upload(&state, &layout, device);
    if job.checkpoints.contains(&start) {
        save(&state).map_err(TrainError::Save)?;
    }
    let mut batches = batches(job.data.clone(), job.order, start, job.end);
    let prefetch = rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1;
    let mut next = None;
    let bar = (job.progress == Progress::Bar && job.end > start).then(|| {
        let b = indicatif::ProgressBar::new(job.end - start);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} it  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(job.label.clone());
        b
    });
    let began = Instant::now();
    for it in start..job.end {
        if super::stop::requested() {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            save(&s.download()).map_err(TrainError::Save)?;
            return Err(TrainError::Interrupted);
        }
        let fetched = match next.take() {
            Some(fetched) => fetched,
            None => batches.next(),
        };
        let mut batch = fetched
            .ok_or(TrainError::Loader)?
            .map_err(TrainError::Data)?;
        // With helpers (several threads), the next batch is made on one of them meanwhile.
        let ahead = prefetch && it + 1 < job.end;
        let (loss, logits) = rayon::in_place_scope(|scope| {
            if ahead {
                scope.spawn(|_| next = Some(batches.next()));
            }
            step::<B>(job, &mut s, &mut batch, it, device)
        });
        let loss = loss.inner();
        // Reading the loss syncs with the device: only now and then, at fixed iterations (so
        // that where a divergence is found does not depend on how the run is watched).
        let check = it % DIVERGENCE_CHECK == 0 || it + 1 == job.end;
        if check && !download(&loss)[0].is_finite() {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            let state = Box::new(s.download());
            return Err(TrainError::Diverged {
                iteration: it,
                state,
            });
        }
        if let Some(b) = &bar {
            b.inc(1);
            if it % 100 == 0 {
                let value = download(&loss)[0];
                let accuracy = batch_accuracy(&logits.inner(), &batch.labels);
                b.set_message(format!(
                    "{} loss {value:.4} acc {:.1}%",
                    job.label,
                    accuracy * 100.0
                ));
            }
        }
        if job.checkpoints.contains(&s.iteration) {
            save(&s.download()).map_err(TrainError::Save)?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
        let secs = began.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} iterations in {secs:.1}s ({:.0} it/s)",
            job.label,
            job.end - start,
            (job.end - start) as f64 / secs.max(1e-9)
        );
    }
    Ok(s.download())
}

/// One iteration on `batch`: the loss, its gradients, the masked update of `s`'s parameters
/// (and buffers: batch norm's running statistics). Returns the loss and the logits.
fn step<B: TrainBackend>(
    job: &Job,
    s: &mut DeviceState<B::InnerBackend>,
    batch: &mut Batch,
    it: u64,
    device: &B::Device,
) -> (Tensor<B, 1>, Tensor<B, 2>) {
    let dropout_seed = Rng::derive(&[job.order.seed, job.order.copy, it]).next_u64();
    let step = loss_of::<B>(
        job.net,
        s,
        batch,
        &job.data.spec,
        job.recipe.label_smoothing,
        dropout_seed,
        device,
    );
    let (params, loss, logits) = (step.params, step.loss, step.logits);
    let grads = loss.backward();
    let gradients: Vec<_> = params.iter().map(|p| p.grad(&grads)).collect();
    // The autodiff leaves share the parameters' storage: dropped, the update runs in place.
    drop((params, grads));
    let rule = optim::Step {
        optimizer: &job.recipe.optimizer,
        lr: learning_rate(job.recipe, it),
        weight_decay: job.recipe.weight_decay,
        t: s.steps + 1,
    };
    s.steps += 1;
    let (slots, masks) = (&mut s.slots, &s.masks);
    s.params = std::mem::take(&mut s.params)
        .into_iter()
        .zip(gradients)
        .enumerate()
        .map(|(i, (p, g))| match g {
            Some(g) => {
                B::InnerBackend::masked_update(&rule, p, g, &mut slots[i], masks[i].as_ref())
            }
            None => p,
        })
        .collect();
    s.buffers = step.buffers.into_iter().map(|b| b.inner()).collect();
    s.iteration = it + 1;
    (loss, logits)
}

/// Gradients of the loss on one batch (the first of the data order) at `state`, for SNIP.
pub fn gradients<B: TrainBackend>(
    net: &NetSpec,
    recipe: &RecipeSpec,
    data: &Dataset,
    order: Order,
    state: &State,
    device: &B::Device,
) -> Result<Vec<Vec<f32>>, DataError> {
    let (n, _) = order.epoch_shape(data);
    let mut batch = data.train_batch(&order, &order.epoch(n, 0), 0)?;
    let s: DeviceState<B::InnerBackend> = DeviceState::upload(state, &Layout::of(net), device);
    let step = loss_of::<B>(
        net,
        &s,
        &mut batch,
        &data.spec,
        recipe.label_smoothing,
        0,
        device,
    );
    let (params, grads) = (step.params, step.loss.backward());
    Ok(params
        .iter()
        .zip(&state.params)
        .enumerate()
        .map(|(i, (p, host))| {
            p.grad(&grads)
                .map_or_else(|| vec![0.0; host.len()], |g| s.to_host(i, &g))
        })
        .collect())
}
