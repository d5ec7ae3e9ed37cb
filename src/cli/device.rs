//! Which backend a command trains on: `cpu` (burn's flex with lthc's kernels), `cuda[:N]` or
//! `wgpu` (burn's Vulkan, Metal or DX12 backend), as `--device` or an executor definition
//! names it. One dispatch for `lthc run` (the whole
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
        "wgpu" => on_wgpu(work),
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

#[cfg(feature = "wgpu")]
fn on_wgpu<W: OnDevice>(work: W) -> Result<W::Output, Box<Diag>> {
    use burn::backend::wgpu::WgpuDevice;
    // The default device: a discrete GPU, else an integrated one, else a CPU device (lavapipe).
    if !answers::<burn::backend::Wgpu>(&WgpuDevice::default()) {
        return Err(Box::new(
            Diag::global(code::EXEC_DEVICE, "no usable wgpu device")
                .help("wgpu needs a Vulkan, Metal or DX12 driver (on Linux without a GPU: Mesa's lavapipe, `apt-get install mesa-vulkan-drivers`), or run with `--device cpu`"),
        ));
    }
    work.run::<Autodiff<burn::backend::Wgpu>>(WgpuDevice::default())
}

#[cfg(not(feature = "wgpu"))]
fn on_wgpu<W: OnDevice>(_: W) -> Result<W::Output, Box<Diag>> {
    Err(Box::new(
        Diag::global(
            code::EXEC_DEVICE,
            "this lthc was built without wgpu, so `wgpu` is not available",
        )
        .help("build with `cargo build --release --features wgpu`, or run with `--device cpu`"),
    ))
}

/// Whether `device` takes a tensor and gives it back. GPU runtimes panic when no driver or
/// device is there: the panic is caught, and its message kept off the terminal.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn answers<B: burn::tensor::backend::Backend>(device: &B::Device) -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = burn::tensor::Tensor::<B, 1>::from_floats([1.0], device).into_data();
    }))
    .is_ok();
    std::panic::set_hook(hook);
    ok
}

/// A device that is none of `cpu`, `cuda[:N]` and `wgpu`.
fn unknown_device(name: &str) -> Box<Diag> {
    Box::new(
        Diag::global(code::EXEC_DEVICE, format!("unknown device `{name}`"))
            .help("use `--device cpu`, `--device cuda[:N]` or `--device wgpu`"),
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
    let dev = burn::backend::cuda::CudaDevice::new(index);
    if !answers::<burn::backend::Cuda>(&dev) {
        return Err(Box::new(
            Diag::global(code::EXEC_DEVICE, format!("no usable CUDA device `{device}`"))
                .help("check `nvidia-smi`; the CUDA driver and NVRTC must be installed, or run with `--device cpu`"),
        ));
    }
    f(dev)
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
