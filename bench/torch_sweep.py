"""The OpenLTH-style sweep of bench/sweep.sh as a lean PyTorch loop: batches from memory, all
threads, each rewind point retraining the dense network as OpenLTH does. LeNet-300-100 on
MNIST, SGD 0.1, batch 128, 2 epochs; IMP with global 20% magnitude pruning (output layer
excluded) for 3 levels; rewind points 0, 100 and 500 iterations. Prints one JSON line."""
import gzip, json, os, struct, sys, time

import torch
import torch.nn as nn


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def find(directory, name):
    for candidate in (name, name + ".gz"):
        if os.path.exists(os.path.join(directory, candidate)):
            return os.path.join(directory, candidate)
    sys.exit(f"{name} not found in {directory}")


def main(directory):
    torch.manual_seed(0)
    x = idx(find(directory, "train-images-idx3-ubyte")).float().div(255).reshape(-1, 784)
    y = idx(find(directory, "train-labels-idx1-ubyte")).long()
    tx = idx(find(directory, "t10k-images-idx3-ubyte")).float().div(255).reshape(-1, 784)
    ty = idx(find(directory, "t10k-labels-idx1-ubyte")).long()
    batch, per_epoch = 128, -(-len(x) // 128)
    total = 2 * per_epoch
    loss_fn = nn.CrossEntropyLoss()

    def model():
        return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))

    def train(net, start, end, masks=None, save_at=None):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        saved = None
        order = None
        for it in range(start, end):
            if it == save_at:
                saved = {k: v.clone() for k, v in net.state_dict().items()}
            if order is None or it % per_epoch == 0 or it == start:
                g = torch.Generator().manual_seed(it // per_epoch)
                order = torch.randperm(len(x), generator=g)
            idx_ = order[(it % per_epoch) * batch:(it % per_epoch + 1) * batch]
            opt.zero_grad()
            loss_fn(net(x[idx_]), y[idx_]).backward()
            if masks:
                for p, m in masks:
                    p.grad.mul_(m)
            opt.step()
            if masks:
                with torch.no_grad():
                    for p, m in masks:
                        p.mul_(m)
        if save_at == end:
            saved = {k: v.clone() for k, v in net.state_dict().items()}
        with torch.no_grad():
            accuracy = (net(tx).argmax(1) == ty).float().mean().item()
        return saved, accuracy

    iterations, runs = 0, 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for rewind in (0, 100, 500):
        net = model()
        w_k, _ = train(net, 0, total, save_at=rewind)
        iterations += total
        runs += 1
        prunable = [net[0].weight, net[2].weight]  # the output layer is excluded
        masks = [torch.ones_like(p) for p in prunable]
        for level in range(3):
            alive = torch.cat([p.detach().abs()[m > 0] for p, m in zip(prunable, masks)])
            threshold = alive.kthvalue(int(0.2 * len(alive))).values
            masks = [m * (p.detach().abs() > threshold).float() for p, m in zip(prunable, masks)]
            net.load_state_dict(w_k)
            prunable = [net[0].weight, net[2].weight]
            with torch.no_grad():
                for p, m in zip(prunable, masks):
                    p.mul_(m)
            _, accuracy = train(net, rewind, total, masks=list(zip(prunable, masks)))
            iterations += total - rewind
            runs += 1
    secs, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"framework": "pytorch", "iterations": iterations, "runs": runs, "seconds": round(secs, 2),
                      "cpu_seconds": round(cpu, 2),
                      "examples_per_second": round(iterations * batch / secs), "threads": torch.get_num_threads(),
                      "last_accuracy": round(accuracy, 4)}))


if __name__ == "__main__":
    main(sys.argv[1])
