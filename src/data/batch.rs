//! Batches: which examples (a pure function of data-order seed, copy and epoch), augmented
//! (seeded per example), normalised to f32, prepared on a separate thread.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use super::{DataError, Dataset, Source};
use crate::check::Augment;
use crate::rng::{stream, Rng};

/// One batch: `[n, c, h, w]` f32 images and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
    pub size: usize,
}

/// How a training run draws its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub seed: u64,
    /// 0 for the run itself; 1 for the second copy of stability and interpolation analyses.
    pub copy: u64,
    pub batch: usize,
}

impl Order {
    /// Training examples per epoch (the held-out tail excluded) and iterations per epoch.
    pub fn epoch_shape(&self, ds: &Dataset) -> (usize, u64) {
        let n = ds.spec.train_examples() as usize;
        (n, n.div_ceil(self.batch) as u64)
    }

    /// The order of the training examples in `epoch`.
    pub fn epoch(&self, n: usize, epoch: u64) -> Vec<u32> {
        Rng::derive(&[self.seed, self.copy, stream::DATA_ORDER, epoch]).permutation(n)
    }
}

impl Dataset {
    /// The training batch of `iteration` (counting from 0), given that epoch's order.
    pub fn train_batch(
        &self,
        order: &Order,
        epoch_order: &[u32],
        iteration: u64,
    ) -> Result<Batch, DataError> {
        let (n, ipe) = order.epoch_shape(self);
        let epoch = iteration / ipe;
        let pos = (iteration % ipe) as usize * order.batch;
        let ids = &epoch_order[pos..(pos + order.batch).min(n)];
        let mut b = self.empty_batch(ids.len());
        for (slot, &i) in ids.iter().enumerate() {
            let mut rng =
                Rng::derive(&[order.seed, order.copy, stream::AUGMENT, epoch, u64::from(i)]);
            self.put(&self.train, i as usize, Some(&mut rng), &mut b, slot)?;
        }
        Ok(b)
    }

    /// Test examples `start..end`, unaugmented.
    pub fn test_batch(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let mut b = self.empty_batch(end - start);
        for (slot, i) in (start..end).enumerate() {
            self.put(&self.test, i, None, &mut b, slot)?;
        }
        Ok(b)
    }

    /// Training examples `start..end` in order, unaugmented (for evaluating on train data).
    pub fn train_eval_batch(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let mut b = self.empty_batch(end - start);
        for (slot, i) in (start..end).enumerate() {
            self.put(&self.train, i, None, &mut b, slot)?;
        }
        Ok(b)
    }

    fn example_len(&self) -> usize {
        self.spec.shape.iter().product::<u64>() as usize
    }

    fn empty_batch(&self, size: usize) -> Batch {
        Batch {
            images: vec![0.0; size * self.example_len()],
            labels: vec![0; size],
            size,
        }
    }

    /// Writes example `i` of `source` into `slot` of the batch, augmented when `rng` is given.
    fn put(
        &self,
        source: &Source,
        i: usize,
        rng: Option<&mut Rng>,
        b: &mut Batch,
        slot: usize,
    ) -> Result<(), DataError> {
        let len = self.example_len();
        let (label, bytes): (u16, Vec<u8>) = match source {
            Source::Memory(ex) => {
                let img = ex.image(i);
                let bytes = match rng {
                    Some(r) => augment_memory(img, ex.shape, &self.spec.augment, r),
                    None => img.to_vec(),
                };
                (ex.labels[i], bytes)
            }
            Source::Folder(f) => {
                let resized = self.spec.augment.iter().find_map(|a| match a {
                    Augment::RandomResizedCrop { min_scale, .. } => Some(*min_scale),
                    _ => None,
                });
                let flip = self.spec.augment.contains(&Augment::HorizontalFlip);
                let bytes = match (rng, resized) {
                    (Some(r), Some(min_scale)) => f.random_resized(i, min_scale, flip, r)?,
                    _ => f.center(i)?,
                };
                (f.label(i), bytes)
            }
        };
        let out = &mut b.images[slot * len..(slot + 1) * len];
        let channels = self.spec.shape[0] as usize;
        let plane = len / channels.max(1);
        for (j, (o, &p)) in out.iter_mut().zip(&bytes).enumerate() {
            let c = if self.spec.shape.len() == 3 {
                j / plane
            } else {
                0
            };
            let x = f32::from(p) / 255.0;
            *o = match (self.spec.mean.len(), self.spec.std.len()) {
                (0, _) => x,
                (1, _) => (x - self.spec.mean[0] as f32) / self.spec.std[0] as f32,
                _ => (x - self.spec.mean[c] as f32) / self.spec.std[c] as f32,
            };
        }
        b.labels[slot] = i64::from(label);
        Ok(())
    }
}

/// Random crop with zero padding and horizontal flip on a CHW byte image.
fn augment_memory(
    img: &[u8],
    [c, h, w]: [usize; 3],
    augments: &[Augment],
    rng: &mut Rng,
) -> Vec<u8> {
    let mut out = img.to_vec();
    for a in augments {
        match a {
            Augment::RandomCrop { padding } => {
                let p = *padding as usize;
                let dy = rng.below(2 * p as u64 + 1) as isize - p as isize;
                let dx = rng.below(2 * p as u64 + 1) as isize - p as isize;
                let src = out.clone();
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let (sy, sx) = (y as isize + dy, x as isize + dx);
                            let inside =
                                sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w;
                            out[(ch * h + y) * w + x] = if inside {
                                src[(ch * h + sy as usize) * w + sx as usize]
                            } else {
                                0
                            };
                        }
                    }
                }
            }
            Augment::HorizontalFlip => {
                if rng.next_f64() < 0.5 {
                    for row in out.chunks_mut(w) {
                        row.reverse();
                    }
                }
            }
            Augment::RandomResizedCrop { .. } => {}
        }
    }
    out
}

/// Prepares the training batches of iterations `start..end` on another thread, a few ahead.
pub fn prefetch(
    ds: Arc<Dataset>,
    order: Order,
    start: u64,
    end: u64,
) -> Receiver<Result<Batch, DataError>> {
    let (tx, rx) = sync_channel(4);
    std::thread::spawn(move || {
        let (n, ipe) = order.epoch_shape(&ds);
        let mut current: Option<(u64, Vec<u32>)> = None;
        for it in start..end {
            let epoch = it / ipe;
            if current.as_ref().is_none_or(|(e, _)| *e != epoch) {
                current = Some((epoch, order.epoch(n, epoch)));
            }
            let perm = &current.as_ref().expect("epoch order").1;
            let b = ds.train_batch(&order, perm, it);
            let failed = b.is_err();
            if tx.send(b).is_err() || failed {
                return;
            }
        }
    });
    rx
}
