"""PyTorch baseline for bench/train_speed.sh: the same networks, batch sizes, optimizers and
random data as benches/train_speed.rs, on the CPU. Prints one JSON line per network."""
import json, os, resource, sys, time

import torch
import torch.nn as nn

torch.manual_seed(1)
# BENCH_DEVICE=cuda for bench/gpu.sh; the CPU otherwise.
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")


def lenet():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.main(x) + self.short(x))


def resnet20():
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for width, stride in [(16, 1), (32, 2), (64, 2)]:
        for i in range(3):
            layers.append(Block(cin, width, stride if i == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def vgg_stage1():
    """VGG-19's first stage at CIFAR-10 size, pooled into a classifier (benches/train_speed.rs)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def mnist(shape):
    """The first 10,000 MNIST training images and labels, normalised as lthc's `mnist` is."""
    from torch_sweep import find, idx
    base = os.environ.get("LTHC_DATA") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lthc", "data")
    directory = os.path.join(base, "mnist")
    x = idx(find(directory, "train-images-idx3-ubyte"))[:10_000].float().div(255)
    y = idx(find(directory, "train-labels-idx1-ubyte"))[:10_000].long()
    return ((x - 0.1307) / 0.3081).reshape(-1, *shape), y


def run(name, iterations):
    # `*_mnist`: the same network and recipe on real MNIST images (lthc's sparse first layer
    # applies to them; PyTorch's speed does not depend on the values).
    real = name.endswith("_mnist")
    base = name[: -len("_mnist")] if real else name
    if base == "lenet":
        model, batch, shape = lenet(), 60, (1, 28, 28)
        opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    elif base == "lenet_sgd":  # bench/sweep.sh's recipe
        model, batch, shape = lenet(), 128, (1, 28, 28)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    else:
        model, batch, shape = (vgg_stage1() if name == "vgg_stage1" else resnet20()), 128, (3, 32, 32)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model = model.to(DEVICE)
    opt = type(opt)(model.parameters(), **opt.defaults)
    if real:
        data, labels = (t.to(DEVICE) for t in mnist(shape))
    else:
        data = torch.rand(10_000, *shape, device=DEVICE)
        labels = torch.randint(0, 10, (10_000,), device=DEVICE)
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        idx = torch.randint(0, 10_000, (batch,), device=DEVICE)
        opt.zero_grad()
        loss = loss_fn(model(data[idx]), labels[idx])
        loss.backward()
        opt.step()

    for i in range(5):
        step(i)
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(iterations):
        step(i)
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(json.dumps({"framework": "pytorch", "network": name, "batch": batch, "iterations": iterations,
                      "seconds": round(secs, 3), "cpu_seconds": round(cpu, 3), "examples_per_second": round(iterations * batch / secs, 1),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    networks = [sys.argv[1]] if len(sys.argv) > 1 else ["lenet", "lenet_sgd", "resnet20", "vgg_stage1"]
    its = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    for n in networks:
        run(n, its or (3000 if n.startswith("lenet") else 30))
