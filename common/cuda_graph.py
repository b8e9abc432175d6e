"""A training step captured in a CUDA graph and replayed: one launch for the whole forward, backward and optimizer
update instead of hundreds of small ones. At batch 32 the host's per-kernel and per-step work, not the GPU, sets
the pace of these models; a replay costs the host a few microseconds."""

from collections.abc import Callable

import torch

from common.errors import ConfigError


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Makes an optimizer's update graph-safe: its step count on the device (``capturable``) and its learning
    rate a device tensor, so that a replayed update reads the rate a schedule sets (schedulers ``fill_`` tensor
    rates in place) instead of the number it was captured with."""
    for group in optimizer.param_groups:
        if "capturable" not in group:
            raise ConfigError(
                f"cuda_graph needs an optimizer with a capturable mode (Adam, AdamW, ...), not "
                f"{type(optimizer).__name__}."
            )
        group["capturable"] = True
        device = group["params"][0].device
        lr = group["lr"]
        group["lr"] = lr.to(device) if torch.is_tensor(lr) else torch.tensor(float(lr), device=device)


class CapturedStep:
    """``step(inputs, target)`` captured once and replayed for each later call with inputs of the captured shapes.

    ``step`` does a whole optimizer step (zero_grad, forward, backward, the optimizer's update, on graph-safe
    optimizers: ``make_capturable``) and returns tensors. The first ``warmup`` calls run it eagerly on a side
    stream, as CUDA graphs need (lazy initialisation, cuDNN's choices, the optimizer's state), and are real
    steps of the training; the next call captures and replays it. Only batches of ``batch_size`` samples are
    captured and replayed; others (an epoch's last, smaller batch) run eagerly. The returned tensors are the
    graph's own outputs, overwritten by the next replay: read them (or queue kernels that read them) before the
    next call.
    """

    def __init__(
        self, step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]], batch_size: int, warmup: int = 3
    ) -> None:
        self.step = step
        self.batch_size = batch_size
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side_stream: torch.cuda.Stream | None = None
        self.shapes: tuple[torch.Size, torch.Size] | None = None

    def __call__(self, inputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        shapes = (inputs.shape, target.shape)
        if self.shapes is None and len(inputs) == self.batch_size:  # a resumed epoch may start on its last batch
            self.shapes = shapes
        if shapes != self.shapes:
            return self.step(inputs, target)
        # Autocast's cache of cast weights would be captured stale: graphs run with it off.
        with torch.autocast(
            "cuda",
            dtype=torch.get_autocast_dtype("cuda"),
            enabled=torch.is_autocast_enabled("cuda"),
            cache_enabled=False,
        ):
            if self.graph is not None:
                self.inputs.copy_(inputs)
                self.target.copy_(target)
                self.graph.replay()
                return self.outputs
            if self.warmup > 0:
                self.warmup -= 1
                side = self.side_stream = self.side_stream or torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    outputs = self.step(inputs, target)
                torch.cuda.current_stream().wait_stream(side)
                return outputs
            self.inputs, self.target = inputs.clone(), target.clone()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.outputs = self.step(self.inputs, self.target)
            self.graph = graph
            graph.replay()  # capturing records the step without running it
            return self.outputs
