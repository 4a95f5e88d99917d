"""Random augmentations of motion windows (B, T, C), shared by RelCon and the language teacher.

Every function draws its randomness from a `torch.Generator` (reproducible runs) and draws its
parameters per window. Rotations treat each sensor position as a rigid body: its accelerometer
and gyroscope triples turn by the same matrix, so the physics between them is preserved.
"""

from __future__ import annotations

import torch

AXES = ("x", "y", "z")


def sensor_positions(channels) -> list[list[list[int]]]:
    """Channel indices of 3-axis vectors grouped by sensor position.

    `("acc_x","acc_y","acc_z","gyro_x","gyro_y","gyro_z")` -> `[[[0,1,2],[3,4,5]]]` (one position,
    two triples); `"wrist_acc_x"` belongs to position "wrist". Channels that do not form a full
    x/y/z triple are left out (they are never rotated).
    """
    positions: dict[str, list[list[int]]] = {}
    bases: dict[str, dict[str, int]] = {}
    for i, name in enumerate(channels):
        name = str(name)
        base, _, axis = name.rpartition("_")
        if axis in AXES and base:
            bases.setdefault(base, {})[axis] = i
    for base, axes in bases.items():
        if set(axes) == set(AXES):
            position = base.rpartition("_")[0]  # "wrist_acc" -> "wrist", "acc" -> ""
            positions.setdefault(position, []).append([axes[a] for a in AXES])
    return list(positions.values())


def default_positions(n_channels: int) -> list[list[list[int]]]:
    """Unnamed channels: consecutive triples of one sensor (acc, gyro, ...)."""
    return [[[i, i + 1, i + 2] for i in range(0, n_channels - n_channels % 3, 3)]] if n_channels >= 3 else []


def random_rotation(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """(n, 3, 3) rotation matrices drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(1)
    r = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=1).reshape(n, 3, 3)
    return r.to(dtype)


def rotate(x: torch.Tensor, generator=None, positions=None) -> torch.Tensor:
    """Turn every sensor position of every window by its own uniform random rotation."""
    positions = default_positions(x.shape[-1]) if positions is None else positions
    out = x.clone()
    for triples in positions:
        r = random_rotation(x.shape[0], generator, x.dtype)  # one per window, shared by the triples
        for idx in triples:
            out[..., idx] = x[..., idx] @ r.transpose(1, 2)
    return out


def jitter(x: torch.Tensor, generator=None, sigma: float = 0.05) -> torch.Tensor:
    """Add Gaussian noise of `sigma` times each window's standard deviation."""
    scale = x.std(dim=(1, 2), keepdim=True).clamp_min(1e-3) * sigma
    return x + torch.randn(x.shape, generator=generator, dtype=x.dtype) * scale


def scale(x: torch.Tensor, generator=None, sigma: float = 0.1) -> torch.Tensor:
    """Multiply each window by a random factor around 1."""
    f = 1 + sigma * torch.randn(x.shape[0], 1, 1, generator=generator, dtype=x.dtype)
    return x * f


def negate(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Flip the sign of every channel."""
    return -x


def time_flip(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Play the window backwards."""
    return x.flip(1)


def channel_shuffle(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Reorder the channels of each window at random."""
    order = torch.rand(x.shape[0], x.shape[-1], generator=generator).argsort(1)
    return x.gather(2, order[:, None, :].expand_as(x))


def permute(x: torch.Tensor, generator=None, max_segments: int = 5) -> torch.Tensor:
    """Cut each window into k equal segments (2..max_segments) and shuffle their order."""
    b, t, _ = x.shape
    k = int(torch.randint(2, max_segments + 1, (1,), generator=generator))
    bounds = torch.linspace(0, t, k + 1).round().long().tolist()
    segments = [torch.arange(bounds[s], bounds[s + 1]) for s in range(k)]
    order = torch.rand(b, k, generator=generator).argsort(1)  # new slot -> old segment
    idx = torch.stack([torch.cat([segments[s] for s in row]) for row in order.tolist()])
    return x.gather(1, idx[:, :, None].expand_as(x))


def time_warp(x: torch.Tensor, generator=None, sigma: float = 0.2, knots: int = 4) -> torch.Tensor:
    """Resample each window along a smooth random time curve (linear interpolation)."""
    b, t, c = x.shape
    speed = 1 + sigma * torch.randn(b, 1, knots + 2, generator=generator, dtype=x.dtype)
    speed = torch.nn.functional.interpolate(speed, size=t, mode="linear", align_corners=True)[:, 0]
    pos = torch.cumsum(speed.clamp_min(0.1), dim=1)
    pos = (pos - pos[:, :1]) / (pos[:, -1:] - pos[:, :1]).clamp_min(1e-6) * (t - 1)
    lo = pos.floor().long().clamp(0, t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    frac = (pos - lo.to(x.dtype))[:, :, None]
    gather = lambda i: x.gather(1, i[:, :, None].expand(b, t, c))  # noqa: E731
    return gather(lo) * (1 - frac) + gather(hi) * frac


AUGMENTATIONS = {
    "noise": jitter,
    "scale": scale,
    "rotate": rotate,
    "negate": negate,
    "flip": time_flip,
    "shuffle": channel_shuffle,
    "permute": permute,
    "warp": time_warp,
}


def random_augment(x: torch.Tensor, generator=None, n: int = 2, names=tuple(AUGMENTATIONS),
                   positions=None) -> torch.Tensor:
    """Apply `n` distinct augmentations, chosen per window from `names`, to each window."""
    names = list(names)
    if not 0 < n <= len(names):
        raise ValueError(f"cannot pick {n} of {len(names)} augmentations")
    chosen = torch.rand(x.shape[0], len(names), generator=generator).argsort(1)[:, :n]
    picked = torch.zeros(x.shape[0], len(names), dtype=torch.bool)
    picked.scatter_(1, chosen, True)
    for k, name in enumerate(names):
        mask = picked[:, k]
        if not mask.any():
            continue
        fn = AUGMENTATIONS[name]
        y = fn(x, generator, positions=positions) if name == "rotate" else fn(x, generator)
        x = torch.where(mask[:, None, None], y, x)
    return x
