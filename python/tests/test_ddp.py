"""DistributedDataParallel smoke run: 2 processes (gloo, CPU) training a model with unitfp8
layers for a few steps match one process on the same global batch."""

import datetime
import os
import sys

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

STEPS = 4
GLOBAL_BATCH = 8
SEQ = 6
VOCAB = 13
D = 32


def _model():
    from unitfp8.torch.nn import ResidualMix, UnitScaledLinear

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, D)
            self.up = UnitScaledLinear(D, 4 * D)
            self.down = UnitScaledLinear(4 * D, D)
            self.mix = ResidualMix(0.3)
            self.norm = torch.nn.LayerNorm(D, elementwise_affine=False)
            self.head = torch.nn.Linear(D, VOCAB, bias=False)

        def forward(self, t):
            h = self.embed(t)
            h = self.mix(h, self.norm(self.down(torch.relu(self.up(h)))))
            return self.head(h)

    torch.manual_seed(0)
    return Net()


def _data():
    """Learnable sequences: each token is the previous one plus a per-sequence stride."""
    g = torch.Generator().manual_seed(1)
    start = torch.randint(0, VOCAB, (STEPS, GLOBAL_BATCH, 1), generator=g)
    stride = torch.randint(1, 3, (STEPS, GLOBAL_BATCH, 1), generator=g)
    return (start + stride * torch.arange(SEQ + 1)) % VOCAB


def _train(model, batches, rank=0, world=1):
    from unitfp8.torch.nn import mus_param_groups

    opt = torch.optim.AdamW(mus_param_groups(model, 1e-2, width=D, base_width=D))
    losses = []
    per = GLOBAL_BATCH // world
    for step in range(STEPS):
        b = batches[step, rank * per : (rank + 1) * per]
        logits = model(b[:, :-1])
        # mean over the *global* batch: each rank's dy equals the 1-process dy element for
        # element, so the FP8 (E5M2) rounding of dy is the same; the gradients are summed
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, VOCAB), b[:, 1:].reshape(-1), reduction="sum"
        ) / (GLOBAL_BATCH * SEQ)
        opt.zero_grad()
        loss.backward()
        opt.step()
        lt = loss.detach().clone()
        if world > 1:
            dist.all_reduce(lt)
        losses.append(lt.item())
    return losses


def _sum_hook(state, bucket):
    """DDP communication hook that sums gradients (the loss is already a global mean)."""
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def _worker(rank, world, init_file, out_file):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120)
    )
    try:
        torch.set_num_threads(1)
        model = torch.nn.parallel.DistributedDataParallel(_model())
        model.register_comm_hook(None, _sum_hook)
        losses = _train(model, _data(), rank, world)
        # the ranks hold identical parameters
        flat = torch.cat([p.detach().reshape(-1) for p in model.module.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        if rank == 0:
            same = all(torch.equal(gathered[0], g) for g in gathered)
            torch.save({"losses": losses, "state": model.module.state_dict(), "same": same}, out_file)
    finally:
        dist.destroy_process_group()
    # After a clean run, PyTorch's gloo back end sometimes aborts in its static destructors
    # ("terminate called without an active exception", about 1 run in 10, with plain
    # torch.nn.Linear layers too). Rank 0's results are saved: leave without running them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def test_ddp_two_processes_match_one(tmp_path):
    torch.set_num_threads(1)
    single = _model()
    losses1 = _train(single, _data())
    out_file = str(tmp_path / "rank0.pt")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), out_file), nprocs=2, join=True)
    got = torch.load(out_file)
    assert got["same"], "the two ranks' parameters differ"
    # Each rank computes its half of the batch; the all-reduce averages the f32 gradients, so
    # sums are added in another order: the curves agree to f32 rounding, not bit for bit.
    for a, b in zip(losses1, got["losses"]):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (losses1, got["losses"])
    for name, p in single.state_dict().items():
        torch.testing.assert_close(got["state"][name], p, rtol=1e-4, atol=1e-5)
    assert losses1[-1] < losses1[0]
