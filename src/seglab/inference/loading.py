"""Networks ready for inference, with their model card: from a seglab checkpoint, or from
published torchvision weights without any training run."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seglab.core.errors import ConfigError
from seglab.data.ade20k import PALETTE as ADE20K_COLOURS
from seglab.data.camvid import COLOURS as CAMVID_COLOURS
from seglab.data.cityscapes import COLOURS as CITYSCAPES_COLOURS
from seglab.data.kitti_road import COLOURS as KITTI_ROAD_COLOURS
from seglab.data.palette import class_palette
from seglab.inference.card import ModelCard
from seglab.models import SegmentationNet
from seglab.models.torchvision_models import VARIANTS
from seglab.models.weights import check_fits, network_weights
from seglab.runs.run_config import TrainedCheckpoint

# datasets whose colours are fixed in code rather than given as data.colours: the official
# class colours, which KITTI road's masks are also stored in (so its predicted masks are too)
DATASET_PALETTES = {"kitti_road": KITTI_ROAD_COLOURS, "cityscapes": CITYSCAPES_COLOURS,
                    "ade20k": ADE20K_COLOURS, "camvid": CAMVID_COLOURS}
COLOUR_MASK_DATASETS = ("kitti_road",)


# data.eval_sizing -> the card's resize; "pad" (fit, then pad) and None keep the picture's size
EVAL_RESIZE = {"resize": lambda size: size, "shorter_side": min}


def run_card(cfg: DictConfig, class_names: list[str], source: str) -> ModelCard:
    """The card of a model trained by a seglab run with config `cfg`: the dataset's colours
    and normalisation, and its evaluation sizing (a fixed resize, the shorter side resized,
    or the picture's own size)."""
    colours = OmegaConf.select(cfg, "data.colours")
    own = OmegaConf.to_container(colours) if colours is not None \
        else DATASET_PALETTES.get(cfg.data.name)
    palette = own if own is not None else class_palette(len(class_names)).tolist()
    input_size = list(cfg.data.input_size)
    sizing = OmegaConf.select(cfg, "data.eval_sizing")
    return ModelCard(
        class_names=list(class_names), palette=[list(map(int, c)) for c in palette],
        mean=list(cfg.data.mean), std=list(cfg.data.std), input_size=input_size,
        resize=EVAL_RESIZE.get(sizing, lambda size: None)(input_size),
        colour_masks=colours is not None or cfg.data.name in COLOUR_MASK_DATASETS,
        model=cfg.model.name, encoder=cfg.encoder.name, source=source)


def load_checkpoint_net(cfg: DictConfig, checkpoint: TrainedCheckpoint) -> SegmentationNet:
    """The run's network (built from its config, no download) with the checkpoint's weights,
    in eval mode; a ConfigError naming the file when they do not fit it. Never compiled, even
    when the run trained with model.compile: tracing and export refuse compiled code."""
    net = instantiate(cfg.model, weights=None, encoder_weights=None, compile=False)
    state = network_weights(checkpoint.contents, checkpoint.path, "ckpt_path")
    check_fits(net, state, f"ckpt_path: {checkpoint.path} does not fit {describe_network(cfg)}")
    net.load_state_dict(state)
    return net.eval()


def describe_network(cfg: DictConfig) -> str:
    """The network a run config builds, in words, for messages."""
    return (f"the network of its run config (model={cfg.model.name} "
            f"encoder={cfg.encoder.name} data.num_classes={cfg.data.num_classes})")


def published_weights(cfg: DictConfig):
    """The torchvision weights entry named by `model.weights` for this model and encoder;
    a ConfigError listing the published names otherwise."""
    name, encoder = cfg.model.name, cfg.encoder.name
    weights = OmegaConf.select(cfg, "model.weights")
    variant = VARIANTS.get((name, encoder))
    published = list(variant.weights.__members__) if variant is not None else []
    if weights not in published:
        choices = (f"published weights for {name} on {encoder}: {', '.join(published)}"
                   if published else
                   "published weights exist for " + ", ".join(
                       f"model={m} encoder={e}" for m, e in VARIANTS))
        raise ConfigError(f"model.weights={weights!r} is not a published weights name "
                          f"without ckpt_path; {choices}")
    return variant.weights[weights]


def published_card(cfg: DictConfig) -> ModelCard:
    """The card of published torchvision weights: class names from their metadata (VOC's
    palette), resize and normalisation from their own preprocessing transform."""
    entry = published_weights(cfg)
    names = ["background" if name == "__background__" else name
             for name in entry.meta["categories"]]
    preprocess = entry.transforms()
    resize = preprocess.resize_size[0] if preprocess.resize_size else None
    side = resize or 520
    return ModelCard(class_names=names, palette=class_palette(len(names)).tolist(),
                     mean=list(preprocess.mean), std=list(preprocess.std),
                     input_size=[side, side], resize=resize, model=cfg.model.name,
                     encoder=cfg.encoder.name, source=str(entry))


def load_published_net(cfg: DictConfig) -> SegmentationNet:
    """The network with the published weights `model.weights` (downloaded once, then read
    from the torch hub cache), sized for their classes, in eval mode."""
    entry = published_weights(cfg)
    net = instantiate(cfg.model, num_classes=len(entry.meta["categories"]),
                      encoder_weights=None)
    return net.eval()
