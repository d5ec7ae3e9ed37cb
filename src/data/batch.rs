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

/// Examples whose bytes are asked for ahead of the one being written into a batch.
const PREFETCH_AHEAD: usize = 4;

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
        let norm = self.normalise();
        let prefetch = |slot: usize| {
            if let (Source::Memory(ex), Some(&i)) = (&self.train, ids.get(slot)) {
                ex.prefetch(i as usize);
            }
        };
        (0..PREFETCH_AHEAD).for_each(prefetch);
        for (slot, &i) in ids.iter().enumerate() {
            prefetch(slot + PREFETCH_AHEAD);
            let mut rng =
                Rng::derive(&[order.seed, order.copy, stream::AUGMENT, epoch, u64::from(i)]);
            self.put(&norm, &self.train, i as usize, Some(&mut rng), &mut b, slot)?;
        }
        Ok(b)
    }

    /// Test examples `start..end`, unaugmented.
    pub fn test_batch(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let mut b = self.empty_batch(end - start);
        let norm = self.normalise();
        for (slot, i) in (start..end).enumerate() {
            self.put(&norm, &self.test, i, None, &mut b, slot)?;
        }
        Ok(b)
    }

    /// Training examples `start..end` in order, unaugmented (for evaluating on train data).
    pub fn train_eval_batch(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let mut b = self.empty_batch(end - start);
        let norm = self.normalise();
        for (slot, i) in (start..end).enumerate() {
            self.put(&norm, &self.train, i, None, &mut b, slot)?;
        }
        Ok(b)
    }

    fn example_len(&self) -> usize {
        self.spec.shape.iter().product::<u64>() as usize
    }

    fn empty_batch(&self, size: usize) -> Batch {
        Batch {
            // Grown example by example in `put`, each zeroed just before it is written.
            images: Vec::with_capacity(size * self.example_len()),
            labels: vec![0; size],
            size,
        }
    }

    /// Writes example `i` of `source` into `slot` of the batch, augmented when `rng` is given.
    fn put(
        &self,
        norm: &Normalise,
        source: &Source,
        i: usize,
        rng: Option<&mut Rng>,
        b: &mut Batch,
        slot: usize,
    ) -> Result<(), DataError> {
        let len = self.example_len();
        if b.images.len() < (slot + 1) * len {
            b.images.resize((slot + 1) * len, 0.0);
        }
        let out = &mut b.images[slot * len..(slot + 1) * len];
        let label = match source {
            Source::Memory(ex) => {
                let img = ex.image(i);
                match rng {
                    Some(r) if !self.spec.augment.is_empty() => {
                        norm.write(&augment_memory(img, ex.shape, &self.spec.augment, r), out)
                    }
                    _ => norm.write(img, out),
                }
                ex.labels[i]
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
                norm.write(&bytes, out);
                f.label(i)
            }
        };
        b.labels[slot] = i64::from(label);
        Ok(())
    }

    /// The byte → f32 map of this dataset's normalisation, one table per channel.
    fn normalise(&self) -> Normalise {
        let spec = &self.spec;
        let channels = if spec.shape.len() == 3 {
            spec.shape[0] as usize
        } else {
            1
        };
        let channels = (0..channels.max(1))
            .map(|c| {
                let centre = match spec.mean.len() {
                    0 => None,
                    1 => Some((spec.mean[0] as f32, spec.std[0] as f32)),
                    _ => Some((spec.mean[c] as f32, spec.std[c] as f32)),
                };
                let value = |p: u8| {
                    let x = f32::from(p) / 255.0;
                    match centre {
                        None => x,
                        Some((mean, std)) => (x - mean) / std,
                    }
                };
                Channel {
                    table: std::array::from_fn(|p| value(p as u8)),
                    centre,
                }
            })
            .collect();
        Normalise { channels }
    }
}

/// Pixel bytes to normalised f32: `(p / 255 - mean[c]) / std[c]`, the same f32 operations
/// for every pixel, so the same bits whichever way: by table lookup (computed once per byte
/// value), or eight pixels at a time with AVX2 where the CPU has it. Eight zero bytes in a row
/// (most of an MNIST digit's background) are one stored value.
struct Normalise {
    channels: Vec<Channel>,
}

struct Channel {
    table: [f32; 256],
    /// Mean and standard deviation, if the dataset has them.
    centre: Option<(f32, f32)>,
}

impl Normalise {
    /// `bytes` (`[c, …]`, planes in channel order) into `out`.
    fn write(&self, bytes: &[u8], out: &mut [f32]) {
        let plane = out.len() / self.channels.len();
        for ((out, bytes), channel) in out
            .chunks_mut(plane.max(1))
            .zip(bytes.chunks(plane.max(1)))
            .zip(&self.channels)
        {
            #[cfg(target_arch = "x86_64")]
            if crate::nn::kernels::simd::avx2() {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { channel.compute_avx2(bytes, out) };
                continue;
            }
            channel.lookup(bytes, out);
        }
    }
}

impl Channel {
    fn lookup(&self, bytes: &[u8], out: &mut [f32]) {
        let t = &self.table;
        let mut outs = out.chunks_exact_mut(8);
        let mut ins = bytes.chunks_exact(8);
        for (o, b) in (&mut outs).zip(&mut ins) {
            if u64::from_ne_bytes(b.try_into().unwrap()) == 0 {
                o.fill(t[0]);
            } else {
                o.iter_mut()
                    .zip(b)
                    .for_each(|(o, &p)| *o = t[usize::from(p)]);
            }
        }
        outs.into_remainder()
            .iter_mut()
            .zip(ins.remainder())
            .for_each(|(o, &p)| *o = t[usize::from(p)]);
    }

    /// [`Channel::lookup`]'s values, computed: a division by 255, then subtracting the mean
    /// and dividing by the std — the operations the table was made with, in that order.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn compute_avx2(&self, bytes: &[u8], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let n = bytes.len().min(out.len());
        let whole = n - n % 8;
        let zero = _mm256_set1_ps(self.table[0]);
        let max = _mm256_set1_ps(255.0);
        let (mean, std) = self.centre.unwrap_or((0.0, 1.0));
        let (mean, std) = (_mm256_set1_ps(mean), _mm256_set1_ps(std));
        for at in (0..whole).step_by(8) {
            // SAFETY: `at + 8 <= whole <= n`, within both slices.
            unsafe {
                let eight = std::ptr::read_unaligned(bytes.as_ptr().add(at) as *const u64);
                let values = if eight == 0 {
                    zero
                } else {
                    let p = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(eight as i64));
                    let x = _mm256_div_ps(_mm256_cvtepi32_ps(p), max);
                    if self.centre.is_some() {
                        _mm256_div_ps(_mm256_sub_ps(x, mean), std)
                    } else {
                        x
                    }
                };
                _mm256_storeu_ps(out.as_mut_ptr().add(at), values);
            }
        }
        self.lookup(&bytes[whole..n], &mut out[whole..n]);
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

/// The training batches of iterations `start..end`, in order. Examples held in memory take
/// little to put together (~30 µs for 128 of MNIST's): the training thread does it between
/// steps. A loader thread for them cost more than it saved: waking it up again after every
/// batch took 3–6% of a LeNet step (the wake-up reaches the other core by an interrupt, on a
/// virtual machine through the hypervisor), and with a training run on every core it only
/// took turns with them. Image folders, decoded from files, are put together on a thread of
/// their own, a few batches ahead.
pub fn batches(ds: Arc<Dataset>, order: Order, start: u64, end: u64) -> Batches {
    let epochs = Epochs {
        ds,
        order,
        next: start,
        end,
        current: None,
    };
    if matches!(epochs.ds.train, Source::Memory(_)) {
        return Batches::Here(epochs);
    }
    let (tx, rx) = sync_channel(4);
    std::thread::spawn(move || {
        for b in epochs {
            let failed = b.is_err();
            if tx.send(b).is_err() || failed {
                return;
            }
        }
    });
    Batches::Loader(rx)
}

/// Where a training run's batches come from: see [`batches`]. A loader thread that stops
/// unexpectedly ends the batches early.
pub enum Batches {
    Here(Epochs),
    Loader(Receiver<Result<Batch, DataError>>),
}

impl Iterator for Batches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Batches::Here(epochs) => epochs.next(),
            Batches::Loader(rx) => rx.recv().ok(),
        }
    }
}

/// The batches of iterations `next..end`, made one by one, each epoch's order drawn once.
pub struct Epochs {
    ds: Arc<Dataset>,
    order: Order,
    next: u64,
    end: u64,
    current: Option<(u64, Vec<u32>)>,
}

impl Iterator for Epochs {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let it = self.next;
        self.next += 1;
        let (n, ipe) = self.order.epoch_shape(&self.ds);
        let epoch = it / ipe;
        if self.current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.current = Some((epoch, self.order.epoch(n, epoch)));
        }
        let perm = &self.current.as_ref().expect("epoch order").1;
        Some(self.ds.train_batch(&self.order, perm, it))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{DataFormat, DatasetSpec};
    use crate::data::Examples;

    /// A `channels` × 16 × 16 image holding every byte value in every channel, and its label.
    fn all_bytes(channels: usize) -> Examples {
        Examples {
            shape: [channels, 16, 16],
            pixels: (0..channels * 256).map(|i| (i * 7 % 256) as u8).collect(),
            labels: vec![3],
        }
    }

    fn dataset(channels: usize, mean: Vec<f64>, std: Vec<f64>, augment: Vec<Augment>) -> Dataset {
        let spec = DatasetSpec {
            name: "d".into(),
            format: DataFormat::Cifar10Binary,
            source: "d".into(),
            fetch: None,
            shape: vec![channels as u64, 16, 16],
            classes: 10,
            train_size: 1,
            test_size: 1,
            holdout: 0,
            mean,
            std,
            augment,
            resize: None,
        };
        Dataset {
            spec,
            train: Source::Memory(all_bytes(channels)),
            test: Source::Memory(all_bytes(channels)),
        }
    }

    /// The normalisation as the formula says, pixel by pixel.
    fn formula(ds: &Dataset, pixels: &[u8]) -> Vec<f32> {
        let plane = pixels.len() / ds.spec.shape[0] as usize;
        let (mean, std) = (&ds.spec.mean, &ds.spec.std);
        pixels
            .iter()
            .enumerate()
            .map(|(j, &p)| {
                let c = if mean.len() > 1 { j / plane } else { 0 };
                let x = f32::from(p) / 255.0;
                if mean.is_empty() {
                    x
                } else {
                    (x - mean[c] as f32) / std[c] as f32
                }
            })
            .collect()
    }

    #[test]
    fn normalised_pixels_are_the_formula_bit_for_bit() {
        let cases = [
            dataset(3, vec![0.49, 0.48, 0.45], vec![0.25, 0.24, 0.26], vec![]),
            dataset(3, vec![0.5], vec![0.2], vec![]),
            dataset(1, vec![], vec![], vec![]),
        ];
        for ds in cases {
            let Source::Memory(ex) = &ds.test else {
                unreachable!()
            };
            let want = formula(&ds, ex.image(0));
            let got = ds.test_batch(0, 1).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got.images), bits(&want), "{:?}", ds.spec.mean);
            assert_eq!(got.labels, [3]);
            let order = Order {
                seed: 1,
                copy: 0,
                batch: 1,
            };
            let train = ds.train_batch(&order, &[0], 0).unwrap();
            assert_eq!(bits(&train.images), bits(&want));
        }
    }

    #[test]
    fn both_ways_of_normalising_give_the_formulas_bits_with_runs_of_zeros() {
        // Zero runs of 3 to 25 bytes at every alignment between other bytes; an odd tail.
        let mut bytes = Vec::new();
        for run in 3..26 {
            bytes.extend(std::iter::repeat_n(0u8, run));
            bytes.push(run as u8 * 9);
        }
        bytes.extend([0, 0, 0]);
        for ds in [
            dataset(1, vec![0.1307], vec![0.3081], vec![]),
            dataset(1, vec![], vec![], vec![]),
        ] {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let want = bits(&formula(&ds, &bytes));
            let channel = &ds.normalise().channels[0];
            let mut got = vec![f32::NAN; bytes.len()];
            channel.lookup(&bytes, &mut got);
            assert_eq!(bits(&got), want, "table lookup");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                let mut got = vec![f32::NAN; bytes.len()];
                // SAFETY: the CPU supports AVX2.
                unsafe { channel.compute_avx2(&bytes, &mut got) };
                assert_eq!(bits(&got), want, "AVX2");
            }
        }
    }

    #[test]
    fn augmented_pixels_are_normalised_after_the_augmentation() {
        let ds = dataset(
            3,
            vec![0.49, 0.48, 0.45],
            vec![0.25, 0.24, 0.26],
            vec![Augment::HorizontalFlip],
        );
        let order = Order {
            seed: 1,
            copy: 0,
            batch: 1,
        };
        // Some epoch flips the image: its first row is the original's, reversed.
        let Source::Memory(ex) = &ds.train else {
            unreachable!()
        };
        let plain = formula(&ds, ex.image(0));
        let flipped = (0..20)
            .map(|epoch| ds.train_batch(&order, &[0], epoch).unwrap().images)
            .find(|images| images != &plain)
            .expect("a flip within 20 epochs");
        let reversed: Vec<f32> = plain[..16].iter().rev().copied().collect();
        assert_eq!(flipped[..16], reversed[..]);
    }
}
