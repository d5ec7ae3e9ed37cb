//! An ImageNet-style class-folder tree: `<split>/<class>/<image>.{jpeg,jpg,png}`, classes in
//! sorted order. Images are decoded when a batch needs them.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

use super::DataError;
use crate::diag::code;
use crate::rng::Rng;

#[derive(Debug)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// (file, class index), sorted by class then file name.
    pub items: Vec<(PathBuf, u16)>,
    /// Side of the square the network sees.
    pub side: u32,
    /// Short side to resize to before the centre crop (evaluation).
    pub resize: u32,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpeg" | "jpg" | "png"))
}

impl ImageFolder {
    pub fn open(root: &Path, side: u32, resize: u32) -> Result<ImageFolder, DataError> {
        let read = |p: &Path| {
            std::fs::read_dir(p).map_err(|e| {
                DataError::new(
                    code::DATA_MISSING,
                    p,
                    format!("cannot read the directory: {e}"),
                    "an image folder dataset needs train/<class>/*.jpeg and val/<class>/*.jpeg under its source directory",
                )
            })
        };
        let mut classes: Vec<String> = read(root)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::new(
                code::DATA_FORMAT,
                root,
                "no class directories",
                "put each class's images in a directory of its own",
            ));
        }
        let mut items = Vec::new();
        for (c, name) in classes.iter().enumerate() {
            let mut files: Vec<PathBuf> = read(&root.join(name))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| is_image(p))
                .collect();
            files.sort();
            items.extend(files.into_iter().map(|f| (f, c as u16)));
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes,
            items,
            side,
            resize,
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn label(&self, i: usize) -> u16 {
        self.items[i].1
    }

    fn decode(&self, i: usize) -> Result<RgbImage, DataError> {
        let path = &self.items[i].0;
        let img = image::open(path).map_err(|e| {
            DataError::new(
                code::DATA_FORMAT,
                path,
                format!("cannot decode the image: {e}"),
                "the file is damaged or not a JPEG/PNG: remove or replace it",
            )
        })?;
        Ok(DynamicImage::from(img.to_rgb8()).to_rgb8())
    }

    /// Evaluation view: resize the short side to `resize`, centre crop `side`; CHW bytes.
    pub fn center(&self, i: usize) -> Result<Vec<u8>, DataError> {
        let img = self.decode(i)?;
        let (w, h) = img.dimensions();
        let scale = self.resize as f64 / w.min(h) as f64;
        let (nw, nh) = (
            ((w as f64 * scale).round() as u32).max(self.side),
            ((h as f64 * scale).round() as u32).max(self.side),
        );
        let img = image::imageops::resize(&img, nw, nh, FilterType::Triangle);
        let (x, y) = ((nw - self.side) / 2, (nh - self.side) / 2);
        Ok(to_chw(
            &image::imageops::crop_imm(&img, x, y, self.side, self.side).to_image(),
        ))
    }

    /// Training view: an Inception-style random-resized crop (area share in [min_scale, 1],
    /// aspect ratio in [3/4, 4/3]) to `side`, and a horizontal flip with probability 1/2.
    pub fn random_resized(
        &self,
        i: usize,
        min_scale: f64,
        flip: bool,
        rng: &mut Rng,
    ) -> Result<Vec<u8>, DataError> {
        let img = self.decode(i)?;
        let (w, h) = img.dimensions();
        let area = (w * h) as f64;
        let mut crop = None;
        for _ in 0..10 {
            let target = area * (min_scale + (1.0 - min_scale) * rng.next_f64());
            let log_ratio =
                (3.0f64 / 4.0).ln() + ((4.0f64 / 3.0).ln() - (3.0f64 / 4.0).ln()) * rng.next_f64();
            let ratio = log_ratio.exp();
            let cw = (target * ratio).sqrt().round() as u32;
            let ch = (target / ratio).sqrt().round() as u32;
            if cw >= 1 && ch >= 1 && cw <= w && ch <= h {
                let x = rng.below(u64::from(w - cw + 1)) as u32;
                let y = rng.below(u64::from(h - ch + 1)) as u32;
                crop = Some((x, y, cw, ch));
                break;
            }
        }
        let (x, y, cw, ch) = crop.unwrap_or_else(|| {
            let s = w.min(h);
            ((w - s) / 2, (h - s) / 2, s, s)
        });
        let cropped = image::imageops::crop_imm(&img, x, y, cw, ch).to_image();
        let mut out = image::imageops::resize(&cropped, self.side, self.side, FilterType::Triangle);
        if flip && rng.next_f64() < 0.5 {
            out = image::imageops::flip_horizontal(&out);
        }
        Ok(to_chw(&out))
    }
}

fn to_chw(img: &RgbImage) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let n = (w * h) as usize;
    let mut out = vec![0u8; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        out[i] = p[0];
        out[n + i] = p[1];
        out[2 * n + i] = p[2];
    }
    out
}
