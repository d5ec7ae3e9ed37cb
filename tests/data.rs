//! Dataset files: the real formats, their errors, and fetching with checksums over HTTP.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use lthc::data::fetch::{fetch_from, sha256_hex, Known, Origin};
use lthc::data::idx;

fn spec_of(dataset_src: &str) -> lthc::check::DatasetSpec {
    let src = format!("{dataset_src}\nimport \"stdlib/networks.lth\"\nimport \"stdlib/recipes.lth\"\nexperiment e {{\n  network = mlp(4, 2)\n  data = d\n  train = lenet_adam\n}}\n");
    let (_, checked, diags) = common::check_one(&src);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    checked.experiments[0].dataset.clone()
}

#[test]
fn truncated_and_foreign_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let src =
        common::tiny_idx(&dir.path().join("tiny"), 20, 10).replace("dataset tiny", "dataset d");
    let spec = spec_of(&src);
    let images = dir.path().join("tiny").join(idx::TRAIN_IMAGES);
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 7]).unwrap();
    let err = lthc::data::load(&spec, dir.path(), false).expect_err("an error");
    assert_eq!(err.code, "lth::data::format");
    assert!(err.path.ends_with(idx::TRAIN_IMAGES), "{err}");
    assert!(err.problem.contains("truncated"), "{err}");
    std::fs::write(&images, b"<html>not found</html>").unwrap();
    let err = lthc::data::load(&spec, dir.path(), false).expect_err("an error");
    assert!(err.problem.contains("not an IDX file"), "{err}");
    std::fs::remove_file(&images).unwrap();
    let err = lthc::data::load(&spec, dir.path(), false).expect_err("an error");
    assert_eq!(err.code, "lth::data::missing");
    assert!(err.help.contains("lthc data fetch"), "{err}");
    let d = err.to_diag();
    assert!(d.message.contains(idx::TRAIN_IMAGES));
}

#[test]
fn sizes_must_match_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::tiny_idx(&dir.path().join("tiny"), 20, 10)
        .replace("dataset tiny", "dataset d")
        .replace("train_size = 20", "train_size = 21");
    let err = lthc::data::load(&spec_of(&src), dir.path(), false).expect_err("an error");
    assert!(
        err.problem
            .contains("the train set has 20 examples, but dataset `d` says 21"),
        "{err}"
    );
}

#[test]
fn cifar10_binary_batches_load_and_augment() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar");
    std::fs::create_dir_all(&root).unwrap();
    let record = |label: u8, value: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(value, 3072));
        r
    };
    for (i, name) in lthc::data::cifar::TRAIN_FILES.iter().enumerate() {
        let bytes: Vec<u8> = [record(i as u8, 10 * i as u8), record(9, 200)].concat();
        std::fs::write(root.join(name), bytes).unwrap();
    }
    std::fs::write(root.join(lthc::data::cifar::TEST_FILE), record(3, 50)).unwrap();
    let spec = spec_of(&format!(
        "dataset d {{\n  format = cifar10_binary\n  source = \"{}\"\n  shape = [3, 32, 32]\n  classes = 10\n  train_size = 10\n  test_size = 1\n  augment = [random_crop(padding: 4), horizontal_flip]\n}}\n",
        root.display()
    ));
    let data = lthc::data::load(&spec, dir.path(), false).unwrap();
    let test = data.test_batch(0, 1).unwrap();
    assert_eq!(test.labels, vec![3]);
    assert!(test.images.iter().all(|&x| (x - 50.0 / 255.0).abs() < 1e-6));
    // Augmented training images: a crop shifted into the zero padding shows zeros at an edge.
    let order = lthc::data::batch::Order {
        seed: 1,
        copy: 0,
        batch: 10,
    };
    let batch = data.train_batch(&order, &order.epoch(10, 0), 0).unwrap();
    assert_eq!(batch.size, 10);
    let mut labels = batch.labels.clone();
    labels.sort();
    assert_eq!(labels, vec![0, 1, 2, 3, 4, 9, 9, 9, 9, 9]);
    // A truncated batch file is an error naming it.
    std::fs::write(root.join("data_batch_3.bin"), vec![0u8; 3000]).unwrap();
    let err = lthc::data::load(&spec, dir.path(), false).expect_err("an error");
    assert!(
        err.path.ends_with("data_batch_3.bin") && err.problem.contains("3073-byte records"),
        "{err}"
    );
}

#[test]
fn image_folders_decode_resize_and_label_by_class() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("imgs");
    for split in ["train", "val"] {
        for (c, class) in ["n01_cat", "n02_dog"].iter().enumerate() {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for k in 0..2 {
                let img = image::RgbImage::from_fn(40, 30, |x, _| {
                    image::Rgb([if c == 0 { 255 } else { 0 }, (x * 6) as u8, 128])
                });
                img.save(d.join(format!("img{k}.png"))).unwrap();
            }
        }
    }
    let spec = spec_of(&format!(
        "dataset d {{\n  format = image_folder\n  source = \"{}\"\n  shape = [3, 16, 16]\n  classes = 2\n  train_size = 4\n  test_size = 4\n  augment = [random_resized_crop(16), horizontal_flip]\n  resize = 18\n}}\n",
        root.display()
    ));
    let data = lthc::data::load(&spec, dir.path(), false).unwrap();
    let test = data.test_batch(0, 4).unwrap();
    assert_eq!(test.labels, vec![0, 0, 1, 1]);
    assert_eq!(test.images.len(), 4 * 3 * 16 * 16);
    // Red channel: 1.0 for class 0, 0.0 for class 1.
    assert!((test.images[0] - 1.0).abs() < 1e-6 && test.images[3 * 256 * 2].abs() < 1e-6);
    let order = lthc::data::batch::Order {
        seed: 1,
        copy: 0,
        batch: 4,
    };
    let batch = data.train_batch(&order, &order.epoch(4, 0), 0).unwrap();
    assert_eq!(batch.images.len(), 4 * 3 * 16 * 16);
    // A run's batches (decoded on a loader thread for image folders) are the batches of its
    // iterations, one epoch per iteration here.
    let data = std::sync::Arc::new(data);
    let run: Vec<_> = lthc::data::batch::batches(data.clone(), order, 1, 3)
        .map(|b| b.unwrap())
        .collect();
    let want: Vec<_> = (1..3)
        .map(|it| data.train_batch(&order, &order.epoch(4, it), it).unwrap())
        .collect();
    assert_eq!(run, want);
    std::fs::write(root.join("val/n02_dog/img1.png"), b"not a png").unwrap();
    let err = data.test_batch(0, 4).expect_err("an error");
    assert!(
        err.path.ends_with("img1.png") && err.problem.contains("cannot decode"),
        "{err}"
    );
}

/// Serves `files` over HTTP on 127.0.0.1 for `requests` requests; returns the base URL.
fn serve(files: Vec<(String, Vec<u8>)>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            match files.iter().find(|(name, _)| *name == path) {
                Some((_, body)) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        }
    });
    format!("http://{addr}")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn fetching_over_http_verifies_checksums() {
    let files: Vec<(&'static str, Vec<u8>)> = vec![
        (
            idx::TRAIN_IMAGES,
            idx::encode(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]),
        ),
        (idx::TRAIN_LABELS, idx::encode(&[2], &[0, 1])),
        (idx::TEST_IMAGES, idx::encode(&[1, 2, 2], &[9, 9, 9, 9])),
        (idx::TEST_LABELS, idx::encode(&[1], &[1])),
    ];
    let sums: Vec<String> = files.iter().map(|(_, b)| sha256_hex(b)).collect();
    let leaked: Vec<&'static str> = sums
        .into_iter()
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect();
    let known = Known {
        name: "fake",
        files: [
            (files[0].0, leaked[0]),
            (files[1].0, leaked[1]),
            (files[2].0, leaked[2]),
            (files[3].0, leaked[3]),
        ],
        npm: None,
        local_dirs: &[],
        mirrors: &[],
        how_to: "copy the files into",
    };
    let served: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(n, b)| (format!("{n}.gz"), gz(b)))
        .collect();
    let url = serve(served.clone(), 4);
    let dir = tempfile::tempdir().unwrap();
    fetch_from(&known, &[Origin::Http(url)], dir.path(), false).unwrap();
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(dir.path().join(name)).unwrap(), bytes);
    }

    // A mirror serving a damaged file: refused by checksum, nothing left behind.
    let mut bad = served;
    bad[0].1 = gz(&idx::encode(&[2, 2, 2], &[0, 0, 0, 0, 0, 0, 0, 0]));
    let url = serve(bad, 1);
    let dir2 = tempfile::tempdir().unwrap();
    let err = fetch_from(&known, &[Origin::Http(url)], dir2.path(), false).expect_err("an error");
    assert_eq!(err.code, "lth::data::fetch");
    assert!(err.problem.contains("checksum mismatch"), "{err}");
    assert!(err.help.contains("copy the files into"), "{err}");
    assert!(!dir2.path().join(idx::TRAIN_IMAGES).exists());

    // Nothing reachable: the error says how to get the files.
    let err = fetch_from(
        &known,
        &[
            Origin::Http("http://127.0.0.1:9".into()),
            Origin::Dir(Path::new("/nonexistent").into()),
        ],
        dir2.path(),
        false,
    )
    .expect_err("an error");
    assert!(err.problem.contains("127.0.0.1:9"), "{err}");
}
