"""ResNet trunks from torchvision, with weights from a user path (never downloaded).

The trunk is exposed as named stages so models can cut it where their paper does:
``stem`` (conv1, bn1, relu, maxpool), ``layer1`` … ``layer4``. The negative-mining network
runs ``stem..layer2`` on the whole image and ``layer3`` per RoI; the pixel relation model
runs a prefix of the trunk and pools RoIs from its last stage.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torchvision
from torch import nn

from tailgraph.errors import DataError

__all__ = ["ResNetTrunk", "load_backbone_weights", "STAGE_NAMES"]

STAGE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")
_BUILDERS = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
}
_LAYER_CHANNELS = {
    18: {"stem": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512},
    34: {"stem": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512},
    50: {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048},
}
_STRIDES = {"stem": 4, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}


def load_backbone_weights(
    model: nn.Module, path: str | Path, stages: tuple[str, ...] | None = None
) -> None:
    """Load a torchvision ResNet state dict (``weights_only=True``) into ``model``.

    Accepts a plain state dict or a checkpoint with a ``state_dict`` / ``model`` entry; the
    classifier (``fc``) may be missing. A tailgraph checkpoint whose model holds one ResNet
    trunk (``….trunk.stages.stem.0.weight`` …) is read as that trunk: a trunk trained inside a
    relation model can be frozen and cached for other runs. With ``stages`` (the stages the
    caller keeps), parameters of the other stages may be missing. Raises :class:`DataError`
    naming the file when the file is absent, unreadable or does not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("backbone weights file not found", file=str(path), field="weights_path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / truncated / not a torch file
        raise DataError(
            f"cannot read backbone weights ({exc.__class__.__name__}: {exc})", file=str(path)
        ) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
    if not isinstance(state, dict):
        raise DataError("expected a state dict", file=str(path))
    state = _trunk_of_checkpoint(state, path)
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    own = model.state_dict()
    kept = ("conv1.", "bn1.", *(f"{s}." for s in stages)) if stages is not None else None
    missing = [
        k
        for k in own
        if k not in state
        and not k.startswith("fc.")
        and not k.endswith("num_batches_tracked")  # absent from frozen (FrozenBatchNorm2d) trunks
        and (kept is None or k.startswith(kept))
    ]
    if missing:
        raise DataError(
            f"weights lack {len(missing)} parameters, e.g. {missing[:3]}", file=str(path)
        )
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise DataError(
                f"parameter {key} has shape {list(value.shape)}, model expects "
                f"{list(own[key].shape)}",
                file=str(path),
                field=key,
            )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


_TRUNK_KEY = re.compile(r"^(.*?)stages\.(stem|layer[1-4])\.")
_STEM = {"0": "conv1", "1": "bn1"}


def _trunk_of_checkpoint(state: dict, path: Path) -> dict:
    """The torchvision-named state of the one :class:`ResNetTrunk` in a tailgraph state dict
    (a trunk's own, or a model's: ``model.features.trunk.stages.…``); ``state`` itself when it
    holds none."""
    found = {k: m for k in state if (m := _TRUNK_KEY.match(k))}
    prefixes = sorted({m.group(1) for m in found.values()})
    if not prefixes:
        return state
    if len(prefixes) > 1:
        raise DataError(
            f"the checkpoint holds {len(prefixes)} trunks ({', '.join(prefixes)}); "
            "give the weights of one",
            file=str(path),
        )
    out = {}
    for key, m in found.items():
        stage, rest = m.group(2), key[m.end() :]
        if stage == "stem":
            index, _, rest = rest.partition(".")
            if index not in _STEM:
                continue
            stage = _STEM[index]
        out[f"{stage}.{rest}"] = state[key]
    return out


class ResNetTrunk(nn.Module):
    """A torchvision ResNet cut into stages.

    Args:
        depth: 18, 34 or 50.
        weights_path: a torchvision state dict to load (e.g. ImageNet weights the user has
            on disk). ``None`` = random initialisation (no download ever happens).
        last_stage: the last stage kept (``"layer2"`` … ``"layer4"``); later stages are dropped.
        frozen: if true, parameters get ``requires_grad=False`` and BatchNorm stays in eval mode.

    Shapes:
        ``forward(images [B, 3, H, W]) -> [B, out_channels, H/stride, W/stride]``.
    """

    def __init__(
        self,
        depth: int = 18,
        weights_path: str | None = None,
        last_stage: str = "layer4",
        frozen: bool = False,
    ) -> None:
        super().__init__()
        if depth not in _BUILDERS:
            raise ValueError(f"depth must be one of {sorted(_BUILDERS)}, got {depth}")
        if last_stage not in STAGE_NAMES:
            raise ValueError(f"last_stage must be one of {STAGE_NAMES}, got {last_stage!r}")
        net = _BUILDERS[depth](weights=None)
        if weights_path is not None:
            keep_stages = STAGE_NAMES[1 : STAGE_NAMES.index(last_stage) + 1]
            load_backbone_weights(net, weights_path, stages=keep_stages)
        self.depth = depth
        self.pretrained = weights_path is not None
        keep = STAGE_NAMES[: STAGE_NAMES.index(last_stage) + 1]
        stages = {"stem": nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)}
        for name in STAGE_NAMES[1:]:
            stages[name] = getattr(net, name)
        self.stages = nn.ModuleDict({name: stages[name] for name in keep})
        self.last_stage = last_stage
        self.out_channels = _LAYER_CHANNELS[depth][last_stage]
        self.stride = _STRIDES[last_stage]
        self.frozen = frozen
        if frozen:
            # BatchNorm with fixed statistics whatever mode the module is put in: a frozen trunk
            # must compute the same map in training and at test (and for its feature cache);
            # a trainer that restores modes by flag would otherwise leave it batch-normalised
            _freeze_batchnorm(self)
            for p in self.parameters():
                p.requires_grad_(False)

    @staticmethod
    def channels(depth: int, stage: str) -> int:
        """Output channels of ``stage`` for a ResNet of ``depth``."""
        return _LAYER_CHANNELS[depth][stage]

    @staticmethod
    def stride_of(stage: str) -> int:
        return _STRIDES[stage]

    def forward_until(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """Run the stages up to and including ``stage``."""
        for name, module in self.stages.items():
            x = module(x)
            if name == stage:
                break
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_until(images, self.last_stage)


def _freeze_batchnorm(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` below ``module`` by torchvision's ``FrozenBatchNorm2d``
    with the same affine parameters and running statistics (the state-dict keys stay those of
    BatchNorm; a stored ``num_batches_tracked`` is dropped on loading)."""
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                if child.affine:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                if child.running_mean is not None and child.running_var is not None:
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)
