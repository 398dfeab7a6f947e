"""Resolves a fine-tuning request into a run configuration.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268), section 5.1, transfer
learning: a fine-tuning run is a preset (the backbone), a recipe (the
authors' Food-101 scripts in clovaai/assembled-cnn, or a row of Table 8 /
the retrieval ablation, `assemble_tf.training.recipes`) and a dataset (a
tfds name or an image folder). This module turns what the user asked for
into the `config.Config` of an ordinary training run:

1. the recipe: named, or the default for the preset (`assemble` for the
   Assemble presets, else `vanilla`); a paper row also brings its backbone
   (unless the preset was given) and its dataset (unless one was given);
2. the dataset: its class count and splits, from the source itself, or
   from the catalogue without reading any data for a dry run; retrieval
   training keeps the train classes only (the class-disjoint protocol);
3. the options the user set explicitly, which win over the recipe.
"""

import dataclasses
import os

from assemble_tf import config as config_lib
from assemble_tf.training import recipes
from official.utils.misc.validation import OptionError


@dataclasses.dataclass(frozen=True)
class FinetuneRequest:
    """What a fine-tuning run asks for, before the recipe is applied.

    Attributes:
        model_dir: the run folder (may be None for a dry run).
        preset: the backbone preset asked for (or the default one).
        preset_explicit: whether `preset` was chosen (a paper row's own
            backbone replaces only a default preset).
        recipe: a recipe name, "none" (the preset's ImageNet recipe) or None
            (the preset's default recipe).
        source: a tfds name or an image folder, or None (the row's).
        retrieval: class-disjoint retrieval training.
        overrides: {group: {field: value}} set explicitly; they win over
            the recipe.
    """

    model_dir: str | None
    preset: str
    preset_explicit: bool = False
    recipe: str | None = None
    source: str | None = None
    retrieval: bool = False
    overrides: dict = dataclasses.field(default_factory=dict)

    def data_option(self, name):
        """An explicit data option, else its `DataConfig` default."""
        data = self.overrides.get("data", {})
        if name in data:
            return data[name]
        return config_lib.DataConfig.__dataclass_fields__[name].default


@dataclasses.dataclass(frozen=True)
class Resolution:
    """A resolved request: the configuration and what it came from.

    Attributes:
        config: the run's `config.Config`.
        recipe_name: the recipe applied ("none" for none).
        recipe: the `recipes.Recipe`, or None.
        source_info: the opened source (None for a dry run).
        warnings: lines for the user (a foreign backbone, no warm start).
        paper: the recipe's figures ({dataset: {metric: value}}), empty
            when the run differs from the paper's row (another backbone).
    """

    config: object
    recipe_name: str
    recipe: object
    source_info: object
    warnings: tuple = ()
    paper: dict = dataclasses.field(default_factory=dict)


def resolve(request, dry_run=False):
    """The `Resolution` of `request`.

    Args:
        request: a `FinetuneRequest`.
        dry_run: resolve without reading data or weights (the class count
            comes from the catalogue or the folder's class folders).

    Raises:
        OptionError: naming the missing or unusable option.
    """
    name = request.recipe or recipes.default_for(request.preset)
    recipe = None if name == "none" else recipes.get(name)
    preset, source, warnings = _apply_recipe(request, name, recipe)
    retrieval = request.retrieval or bool(recipe and recipe.retrieval)
    data, info = dataset_options(request, source, retrieval, dry_run=dry_run)
    # The recipe's values are reset where the request turns their
    # feature off (its cosine temperature with a dense head, its BN
    # statistics option without a warm start); the request's are refused.
    overrides = dict(request.overrides)
    overrides["data"] = {**data, **overrides.get("data", {})}
    if not request.model_dir and not dry_run:
        raise OptionError("model_dir", "{field} is required (the run folder).")
    _check_class_count(request, info, overrides["data"])
    config = config_lib.make_config(
        request.model_dir,
        preset,
        overrides,
        recipe=recipe.overrides if recipe else None,
    )
    resuming = os.path.isfile(
        os.path.join(request.model_dir or "", "config.json")
    )
    if not config.train.warm_start and not dry_run and not resuming:
        warnings += ("no warm start: training from scratch.",)
    if info is not None:
        from assemble_tf.data import sources

        warnings += tuple(sources.folder_warnings(info))
    size = config_lib.eval_size_warning(config.data)
    if size:
        warnings += (size,)
    paper = {}
    replaced = _replaced_recipe_values(recipe, request.overrides, config)
    if replaced:
        # Before: unsaid, and the row's figures reported beside a run of
        # another recipe (F5 without DropBlock is F4).
        warnings += (
            f"recipe {name}'s "
            + ", ".join(f"{f} {old!r} -> {new!r}" for f, old, new in replaced)
            + " (set by the options given): the paper's figures do not "
            "apply.",
        )
    elif recipe is not None and recipe.preset in (None, preset):
        paper = recipe.paper
    warnings += _other_dataset_warning(name, paper, request.source)
    return Resolution(config, name, recipe, info, warnings, paper)


def _replaced_recipe_values(recipe, overrides, config):
    """[(field, the row's value, the run's)] of the options given that
    change the recipe's row: a value it sets, or a regularizer it leaves
    at its default (off); [] without a recipe."""
    if recipe is None:
        return []
    table = recipe.overrides
    regularizers = {
        (group, field)
        for part in recipes.REGULARIZERS.values()
        for group, values in part.items()
        for field in values
    }
    replaced = []
    for group, values in overrides.items():
        section = getattr(config, group, None)
        for field in values:
            if field in table.get(group, {}):
                row = table[group][field]
            elif (group, field) in regularizers:
                row = type(section).__dataclass_fields__[field].default
            else:
                continue
            value = getattr(section, field)
            if not _same(row, value):
                replaced.append((field, row, value))
    return replaced


def _same(a, b):
    """Equal as option values: numbers by value, sequences item by item,
    "none" as None."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return (None if a == "none" else a) == (None if b == "none" else b)


def _other_dataset_warning(name, paper, source):
    """A warning when `source` (given, not the recipe's own) is none of
    the datasets of the paper's figures: a folder named otherwise or
    another tfds set (before: a CUB recipe on any folder printed the
    paper's CUB recall beside it without a word). A folder named like the
    dataset (/data/fgvc_aircraft) counts as it."""
    from assemble_tf.data.sources import catalog

    if not paper or not source or catalog.base_name(source) in paper:
        return ()
    return (
        f"the paper's figures of recipe {name} are on {', '.join(paper)}; "
        f"{source} is none of them by name, so compare with them only if "
        "it holds that dataset.",
    )


def _check_class_count(request, info, data):
    """An explicit `num_classes` below the source's class count dropped
    the other classes' images as out of range, silently; with a
    `class_range` alone the count is the range's."""
    explicit = request.overrides.get("data", {})
    if info is not None:
        # Before: "--num_classes=1 is invalid", a flag not given.
        from assemble_tf.data import sources

        sources.require_classes(info, request.source)
    class_range = explicit.get("class_range")
    if class_range and "num_classes" not in explicit:
        low, high = config_lib.parse_class_range(class_range)
        data["num_classes"] = high - low
        return
    if (
        info is None
        or class_range
        or "num_classes" not in explicit
        or explicit["num_classes"] >= info.num_classes
    ):
        return
    raise OptionError(
        "num_classes",
        "{field}={value} is fewer than the {found} classes of {source}="
        "{path}: the images of the others would be skipped as labels out "
        "of range. Leave {field} out (the source's count), or train on "
        "some classes with {class_range}=LOW,HIGH.",
        ["source", "class_range"],
        value=explicit["num_classes"],
        found=info.num_classes,
        path=request.source,
    )


def _apply_recipe(request, name, recipe):
    """(preset, source, warnings) once the recipe's row is applied."""
    preset, source, warnings = request.preset, request.source, ()
    if recipe is None:
        return preset, source, warnings
    if recipe.preset:
        if not request.preset_explicit:
            preset = recipe.preset
        elif preset != recipe.preset:
            warnings += (
                f"recipe {name} is fine-tuned from {recipe.preset} in the "
                f"paper; preset {preset} replaces it, so the paper's "
                "figures do not apply.",
            )
    return preset, source or recipe.source, warnings


def dataset_options(request, source, retrieval, dry_run=False):
    """({data field: value}, opened source or None) of `source`.

    The class count and the splits come from the source (opened once and
    cached), or with `dry_run` from the catalogue
    or the folder's class folders, reading no data.
    """
    from assemble_tf.data import sources
    from assemble_tf.runs import inputs

    if not source:
        raise OptionError(
            "source",
            "{field} is required: a tfds name (e.g. oxford_flowers102) or "
            "an image folder <root>/<split>/<class>/<image>.",
        )
    data, info = {"source": source, "label_offset": 0}, None
    if dry_run:
        explicit = request.overrides.get("data", {}).get("num_classes")
        data["num_classes"] = explicit or _catalogue_classes(
            request, source, retrieval
        )
        splits = (
            set(_folder_layout(source)[0])
            if os.path.isdir(source)
            else {"validation"}
        )
    else:
        info = inputs.open_source_cached(
            source,
            request.data_option("tfds_data_dir"),
            request.data_option("download"),
        )
        data["num_classes"] = info.num_classes
        splits = set(info.splits)
    if retrieval:
        data.update(_retrieval_split(request, source))
        return data, info
    known = _known(source)
    if known is not None:
        data["train_split"] = known.train_split
    held_out = sources.held_out_split(source, splits)
    if held_out:
        data["validation_split"] = held_out
    return data, info


def _known(source):
    """The catalogue's entry of a tfds `source`; None for an image folder
    (a folder named food101 took Food-101's splits and failed)."""
    from assemble_tf.data import sources

    if sources.is_folder(source):
        return None
    try:
        return sources.transfer_dataset(source)
    except ValueError:
        return None


def _retrieval_split(request, source):
    """Train and evaluate on the training classes (the evaluation a sanity
    check); recall@K on the held-out classes is `eval_retrieval`'s."""
    if os.path.isdir(source) or _given_class_range(request):
        # A folder: its train split is the training half (its classes are
        # kept apart from the test split's for a class-disjoint evaluation).
        # Any tfds set: the classes --class_range names (before: refused
        # unless the catalogue knew a split, naming a flag of
        # eval_retrieval's).
        split = request.data_option("train_split") or "train"
        return {"train_split": split, "validation_split": split}
    split, low, high = _catalogued_retrieval_classes(source)
    return {
        "train_split": split,
        "validation_split": split,
        "num_classes": high - low,
        "class_range": f"{low},{high}",
    }


def _given_class_range(request):
    """The request's explicit (low, high), or None."""
    value = request.overrides.get("data", {}).get("class_range")
    return config_lib.parse_class_range(value)


def _catalogued_retrieval_classes(source):
    """(split, low, high) of the training half of a tfds `source` the
    catalogue splits by class (CUB-200-2011, Cars196, SOP), else an error
    naming --class_range."""
    from assemble_tf.data import sources

    try:
        return sources.retrieval_classes(source, "train")
    except OptionError:
        raise OptionError(
            "class_range",
            "No class-disjoint retrieval split is known for {source}="
            "{name!r} (known: {known}); pass {field}=LOW,HIGH, the classes "
            "to train on (eval_retrieval then tests on the others).",
            ["source"],
            name=source,
            known=", ".join(sorted(sources.RETRIEVAL_SPLITS)),
        ) from None


def _catalogue_classes(request, source, retrieval):
    """The class count of `source` without reading its data."""
    given = _given_class_range(request)
    if given:
        return given[1] - given[0]
    if retrieval and not os.path.isdir(source):
        _, low, high = _catalogued_retrieval_classes(source)
        return high - low
    known = _known(source)
    if known is not None:
        return known.num_classes
    if os.path.isdir(source):
        # The label space of a folder: class folders of all its splits.
        return len(_folder_layout(source)[1])
    raise OptionError(
        "num_classes",
        "A dry run cannot tell the classes of source={source!r} without "
        "reading it; pass {field}.",
        source=source,
    )


def _folder_layout(root):
    from assemble_tf.data import sources

    return sources.folder_layout(root)
