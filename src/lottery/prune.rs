//! Masks. A level removes ceil(rate × surviving) weights (OpenLTH's rule): by smallest
//! magnitude (or SNIP sensitivity) among the survivors, per layer or under one global
//! threshold. Only dense and conv weights are ever masked; ties break by position, so masks
//! are deterministic.

use crate::check::{PruneSpec, Scope};
use crate::nn::Layout;
use crate::rng::{stream, Rng};

/// One optional mask per parameter (None: never masked).
pub type Masks = Vec<Option<Vec<f32>>>;

/// All-ones masks on every prunable parameter.
pub fn full_masks(layout: &Layout) -> Masks {
    layout
        .params
        .iter()
        .map(|p| p.prunable.then(|| vec![1.0; p.len()]))
        .collect()
}

/// The rate each prunable parameter is pruned at (0 for excluded layers).
fn rates(spec: &PruneSpec, layout: &Layout) -> Vec<f64> {
    layout
        .params
        .iter()
        .map(|p| {
            if !p.prunable || spec.exclude.contains(&p.layer) {
                0.0
            } else {
                spec.layer_rates
                    .iter()
                    .find(|(n, _)| *n == p.layer)
                    .map_or(spec.rate, |(_, r)| *r)
            }
        })
        .collect()
}

/// The next mask: prune `spec.rate` of the survivors of `previous`, ranking by `scores`
/// (|weight| for magnitude pruning, |weight × gradient| for SNIP); lowest go first.
pub fn next_mask(
    spec: &PruneSpec,
    layout: &Layout,
    scores: &[Vec<f32>],
    previous: &Masks,
) -> Masks {
    let rates = rates(spec, layout);
    let mut masks: Masks = previous.clone();
    for (i, p) in layout.params.iter().enumerate() {
        if p.prunable && masks[i].is_none() {
            masks[i] = Some(vec![1.0; p.len()]);
        }
    }
    let survivors = |masks: &Masks, i: usize| -> Vec<usize> {
        let m = masks[i].as_ref().expect("prunable");
        (0..m.len()).filter(|&j| m[j] != 0.0).collect()
    };
    match spec.scope {
        Scope::Layerwise => {
            for (i, &rate) in rates.iter().enumerate() {
                if rate == 0.0 {
                    continue;
                }
                let mut alive = survivors(&masks, i);
                let remove = ((rate * alive.len() as f64).ceil() as usize).min(alive.len());
                lowest_first(&mut alive, remove, |&a, &b| {
                    scores[i][a]
                        .abs()
                        .total_cmp(&scores[i][b].abs())
                        .then(a.cmp(&b))
                });
                let m = masks[i].as_mut().expect("prunable");
                for &j in &alive[..remove] {
                    m[j] = 0.0;
                }
            }
        }
        Scope::Global => {
            let mut alive: Vec<(usize, usize)> = Vec::new();
            for (i, &rate) in rates.iter().enumerate() {
                if rate > 0.0 {
                    alive.extend(survivors(&masks, i).into_iter().map(|j| (i, j)));
                }
            }
            let remove = ((spec.rate * alive.len() as f64).ceil() as usize).min(alive.len());
            lowest_first(&mut alive, remove, |&(a, x), &(b, y)| {
                scores[a][x]
                    .abs()
                    .total_cmp(&scores[b][y].abs())
                    .then((a, x).cmp(&(b, y)))
            });
            for &(i, j) in &alive[..remove] {
                masks[i].as_mut().expect("prunable")[j] = 0.0;
            }
        }
    }
    masks
}

/// Moves the `k` lowest of `items` under `order` (a total order: no two items equal) to the
/// front, in no particular order: the same set a full sort would put there, in linear time
/// (a sort of ResNet-50's 25M weights takes seconds).
fn lowest_first<T>(items: &mut [T], k: usize, order: impl FnMut(&T, &T) -> std::cmp::Ordering) {
    if k > 0 && k < items.len() {
        items.select_nth_unstable_by(k, order);
    }
}

/// A random mask with the same number of kept weights as `like`, per layer (`Layerwise`) or
/// in total over every prunable layer but the `exclude`d ones, which stay whole (`Global`).
pub fn random_like(
    like: &Masks,
    layout: &Layout,
    scope: Scope,
    seed: u64,
    exclude: &[String],
) -> Masks {
    let kept = |m: &[f32]| m.iter().filter(|&&x| x != 0.0).count();
    let mut out: Masks = like
        .iter()
        .map(|m| m.as_ref().map(|m| vec![0.0; m.len()]))
        .collect();
    match scope {
        Scope::Layerwise => {
            for (i, m) in like.iter().enumerate() {
                let Some(m) = m else { continue };
                let k = kept(m);
                let mut rng = Rng::derive(&[seed, stream::RANDOM_MASK, i as u64, k as u64]);
                let perm = rng.permutation(m.len());
                let o = out[i].as_mut().expect("same shape");
                for &j in &perm[..k] {
                    o[j as usize] = 1.0;
                }
            }
        }
        Scope::Global => {
            // Excluded layers stay whole; the rest share the kept count, including a layer that
            // IMP happened to leave whole.
            let mut pool: Vec<(usize, usize)> = Vec::new();
            let mut k = 0;
            for (i, m) in like.iter().enumerate() {
                let Some(m) = m else { continue };
                if exclude.contains(&layout.params[i].layer) {
                    out[i] = Some(vec![1.0; m.len()]);
                    continue;
                }
                k += kept(m);
                pool.extend((0..m.len()).map(|j| (i, j)));
            }
            let mut rng = Rng::derive(&[seed, stream::RANDOM_MASK, u64::MAX, k as u64]);
            let perm = rng.permutation(pool.len());
            for &p in &perm[..k] {
                let (i, j) = pool[p as usize];
                out[i].as_mut().expect("prunable")[j] = 1.0;
            }
        }
    }
    out
}

/// Per prunable layer: (layer name, kept, total).
pub fn layer_density(layout: &Layout, masks: &Masks) -> Vec<(String, usize, usize)> {
    layout
        .params
        .iter()
        .zip(masks)
        .filter_map(|(p, m)| {
            m.as_ref().map(|m| {
                (
                    p.layer.clone(),
                    m.iter().filter(|&&x| x != 0.0).count(),
                    m.len(),
                )
            })
        })
        .collect()
}

/// Kept / total over all prunable weights.
pub fn density(masks: &Masks) -> f64 {
    let (k, t) = masks.iter().flatten().fold((0usize, 0usize), |(k, t), m| {
        (k + m.iter().filter(|&&x| x != 0.0).count(), t + m.len())
    });
    if t == 0 {
        1.0
    } else {
        k as f64 / t as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Strategy;
    use crate::nn::{ParamInfo, Role};

    fn layout(sizes: &[usize]) -> Layout {
        Layout {
            params: sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| ParamInfo {
                    layer: format!("l{i}"),
                    role: Role::Weight,
                    shape: vec![n],
                    prunable: true,
                    fan_in: n,
                    fan_out: 1,
                })
                .collect(),
            buffers: vec![],
        }
    }

    fn spec(scope: Scope, rate: f64) -> PruneSpec {
        PruneSpec {
            strategy: Strategy::Magnitude,
            scope,
            rate,
            layer_rates: vec![],
            exclude: vec![],
            levels: 1,
            densities: vec![],
        }
    }

    #[test]
    fn layerwise_prunes_each_layer_by_its_own_magnitudes() {
        let l = layout(&[4, 4]);
        let w = vec![vec![0.1, -0.4, 0.3, 0.2], vec![10.0, 20.0, -30.0, 40.0]];
        let m = next_mask(&spec(Scope::Layerwise, 0.5), &l, &w, &full_masks(&l));
        assert_eq!(m[0], Some(vec![0.0, 1.0, 1.0, 0.0]));
        assert_eq!(m[1], Some(vec![0.0, 0.0, 1.0, 1.0]));
    }

    #[test]
    fn selection_prunes_what_a_full_sort_would_with_ties_broken_by_position() {
        // Magnitudes with many ties (and signs, -0.0, NaN) across three layers.
        let l = layout(&[500, 300, 7]);
        let mut seed = 17u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 40) as u32
        };
        let w: Vec<Vec<f32>> = [500, 300, 7]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| match next() % 20 {
                        0 => -0.0,
                        1 => f32::NAN,
                        r => (r % 6) as f32 * if next() % 2 == 0 { 1.0 } else { -1.0 },
                    })
                    .collect()
            })
            .collect();
        for scope in [Scope::Layerwise, Scope::Global] {
            for rate in [0.0, 0.2, 0.55, 1.0] {
                let m = next_mask(&spec(scope, rate), &l, &w, &full_masks(&l));
                // The reference: every (layer, index) by |w|, then position; the lowest go.
                let mut expected: Masks = full_masks(&l)
                    .into_iter()
                    .zip(&w)
                    .map(|(m, w)| m.or(Some(vec![1.0; w.len()])))
                    .collect();
                let groups: Vec<Vec<usize>> = match scope {
                    Scope::Layerwise => vec![vec![0], vec![1], vec![2]],
                    Scope::Global => vec![vec![0, 1, 2]],
                };
                for layers in groups {
                    let mut all: Vec<(usize, usize)> = layers
                        .iter()
                        .flat_map(|&i| (0..w[i].len()).map(move |j| (i, j)))
                        .collect();
                    all.sort_by(|&(a, x), &(b, y)| {
                        w[a][x]
                            .abs()
                            .total_cmp(&w[b][y].abs())
                            .then((a, x).cmp(&(b, y)))
                    });
                    let remove = ((rate * all.len() as f64).ceil() as usize).min(all.len());
                    for &(i, j) in &all[..remove] {
                        expected[i].as_mut().unwrap()[j] = 0.0;
                    }
                }
                assert_eq!(m, expected, "{scope:?} {rate}");
            }
        }
    }

    #[test]
    fn global_uses_one_threshold() {
        let l = layout(&[4, 4]);
        let w = vec![vec![0.1, -0.4, 0.3, 0.2], vec![10.0, 20.0, -30.0, 40.0]];
        let m = next_mask(&spec(Scope::Global, 0.5), &l, &w, &full_masks(&l));
        assert_eq!(m[0], Some(vec![0.0, 0.0, 0.0, 0.0]));
        assert_eq!(m[1], Some(vec![1.0, 1.0, 1.0, 1.0]));
    }

    #[test]
    fn rates_apply_to_survivors_with_ceiling() {
        let l = layout(&[10]);
        let w = vec![(1..=10).map(|x| x as f32).collect::<Vec<_>>()];
        let s = spec(Scope::Layerwise, 0.2);
        let m1 = next_mask(&s, &l, &w, &full_masks(&l));
        assert_eq!(density(&m1), 0.8); // ceil(0.2 * 10) = 2
        let m2 = next_mask(&s, &l, &w, &m1);
        assert_eq!(density(&m2), 0.6); // ceil(0.2 * 8) = 2 (1.6 rounded up)
        let m3 = next_mask(&s, &l, &w, &m2);
        assert_eq!(density(&m3), 0.4); // ceil(0.2 * 6) = 2
                                       // Pruned weights never come back, and the smallest go first.
        assert_eq!(
            m3[0],
            Some(vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
        );
    }

    #[test]
    fn excluded_layers_and_overrides() {
        let l = layout(&[10, 10]);
        let w = vec![vec![1.0; 10], vec![1.0; 10]];
        let mut s = spec(Scope::Layerwise, 0.5);
        s.layer_rates = vec![("l1".into(), 0.1)];
        let m = next_mask(&s, &l, &w, &full_masks(&l));
        assert_eq!(
            layer_density(&l, &m),
            vec![("l0".into(), 5, 10), ("l1".into(), 9, 10)]
        );
        let mut s = spec(Scope::Global, 0.5);
        s.exclude = vec!["l1".into()];
        let m = next_mask(&s, &l, &w, &full_masks(&l));
        assert_eq!(
            layer_density(&l, &m),
            vec![("l0".into(), 5, 10), ("l1".into(), 10, 10)]
        );
    }

    #[test]
    fn random_masks_keep_per_layer_counts() {
        let l = layout(&[100, 50]);
        let like: Masks = vec![
            Some((0..100).map(|i| f32::from(i < 30)).collect()),
            Some((0..50).map(|i| f32::from(i < 10)).collect()),
        ];
        let r = random_like(&like, &l, Scope::Layerwise, 7, &[]);
        assert_eq!(
            layer_density(&l, &r),
            vec![("l0".into(), 30, 100), ("l1".into(), 10, 50)]
        );
        assert_ne!(r[0], like[0]);
        assert_eq!(r, random_like(&like, &l, Scope::Layerwise, 7, &[]));
        let g = random_like(&like, &l, Scope::Global, 7, &[]);
        assert_eq!(density(&g), density(&like));
    }

    #[test]
    fn global_random_masks_prune_layers_imp_left_whole_unless_excluded() {
        let l = layout(&[100, 50]);
        // IMP left l1 whole (all its weights were large), without excluding it.
        let like: Masks = vec![
            Some((0..100).map(|i| f32::from(i < 30)).collect()),
            Some(vec![1.0; 50]),
        ];
        let g = random_like(&like, &l, Scope::Global, 7, &[]);
        assert_eq!(density(&g), density(&like));
        let kept = layer_density(&l, &g);
        assert!(kept[1].1 < 50, "l1 was not in the pool: {kept:?}");
        // Excluded, it stays whole and the others share the rest.
        let g = random_like(&like, &l, Scope::Global, 7, &["l1".to_string()]);
        assert_eq!(
            layer_density(&l, &g),
            vec![("l0".into(), 30, 100), ("l1".into(), 50, 50)]
        );
    }
}
