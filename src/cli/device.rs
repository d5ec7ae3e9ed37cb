//! Which backend a command trains on: `cpu` (burn's flex with lthc's kernels) or `cuda[:N]`,
//! as `--device` or an executor definition names it. One dispatch for `lthc run` (the whole
//! plan here) and `lthc step` (one step inside a cluster job).

use burn::backend::{Autodiff, Flex};

use crate::diag::{code, Diag};
use crate::train::TrainBackend;

/// Work that runs on whichever backend the device names.
pub trait OnDevice {
    type Output;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<Self::Output, Box<Diag>>;
}

/// Runs `work` on `device`; an unknown device, or CUDA where this build or machine has none,
/// is a diagnostic.
pub fn dispatch<W: OnDevice>(device: &str, work: W) -> Result<W::Output, Box<Diag>> {
    match device {
        "cpu" => work.run::<Autodiff<Flex>>(Default::default()),
        d if d == "cuda" || d.starts_with("cuda:") => on_cuda(d, work),
        other => Err(unknown_device(other)),
    }
}

#[cfg(feature = "cuda")]
fn on_cuda<W: OnDevice>(device: &str, work: W) -> Result<W::Output, Box<Diag>> {
    cuda_device(device, |dev| work.run::<Autodiff<burn::backend::Cuda>>(dev))
}

#[cfg(not(feature = "cuda"))]
fn on_cuda<W: OnDevice>(device: &str, _: W) -> Result<W::Output, Box<Diag>> {
    Err(no_cuda(device))
}

/// A device that is neither `cpu` nor `cuda[:N]`.
fn unknown_device(name: &str) -> Box<Diag> {
    Box::new(
        Diag::global(code::EXEC_DEVICE, format!("unknown device `{name}`"))
            .help("use `--device cpu` or `--device cuda[:N]`"),
    )
}

/// Opens CUDA device `device` (`cuda` or `cuda:N`) and hands it to `f`.
#[cfg(feature = "cuda")]
fn cuda_device<R>(
    device: &str,
    f: impl FnOnce(burn::backend::cuda::CudaDevice) -> Result<R, Box<Diag>>,
) -> Result<R, Box<Diag>> {
    let index: usize = match device
        .strip_prefix("cuda:")
        .map(str::parse)
        .unwrap_or(Ok(0))
    {
        Ok(i) => i,
        Err(_) => {
            return Err(Box::new(
                Diag::global(code::EXEC_DEVICE, format!("`{device}` is not a device"))
                    .help("write `cuda` or `cuda:N` with N a GPU index"),
            ))
        }
    };
    // cubecl panics when no driver or GPU is there: turn that into a diagnostic, quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let dev = burn::backend::cuda::CudaDevice::new(index);
        let t = burn::tensor::Tensor::<burn::backend::Cuda, 1>::from_floats([1.0], &dev);
        let _ = t.into_data();
        dev
    });
    std::panic::set_hook(hook);
    match probe {
        Ok(dev) => f(dev),
        Err(_) => Err(Box::new(
            Diag::global(code::EXEC_DEVICE, format!("no usable CUDA device `{device}`"))
                .help("check `nvidia-smi`; the CUDA driver and NVRTC must be installed, or run with `--device cpu`"),
        )),
    }
}

/// This lthc was built without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
fn no_cuda(device: &str) -> Box<Diag> {
    Box::new(
        Diag::global(
            code::EXEC_DEVICE,
            format!("this lthc was built without CUDA, so `{device}` is not available"),
        )
        .help("build with `cargo build --release --features cuda`, or run with `--device cpu`"),
    )
}
