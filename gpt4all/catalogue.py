"""The model catalogue (models3.json): what a model's file is called, where it downloads from, its templates.

Upstream fetched https://gpt4all.io/models/models3.json every time a model was constructed, even when the file was
already on disk, so GPT4All did not work offline (issue #2868 and friends).  We ship a copy of the catalogue beside
this module and read it for every local decision; only ``list_models()`` (the caller asked for the online list) and
a download of a model the bundled copy does not know go to the network.
"""
from __future__ import annotations

import copy
import json
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests

from .templates import DEFAULT_PROMPT_TEMPLATE, catalogue_to_legacy

CATALOGUE_URL = "https://gpt4all.io/models/models3.json"
BUNDLED_CATALOGUE = Path(__file__).with_name("models3.json")
REQUEST_TIMEOUT_S = 10   # the online catalogue is small: a server that takes longer is treated as unreachable

ConfigType = dict[str, Any]


@lru_cache(maxsize=1)
def _bundled() -> tuple[ConfigType, ...]:
    with open(BUNDLED_CATALOGUE, encoding="utf-8") as f:
        return tuple(json.load(f))


def bundled_models() -> list[ConfigType]:
    """The catalogue shipped with this package (a deep copy: callers may modify it)."""
    return copy.deepcopy(list(_bundled()))


def fetch_models(url: str | None = None, timeout: float = REQUEST_TIMEOUT_S) -> list[ConfigType]:
    """The online catalogue; raises ValueError on an HTTP error, requests' exceptions if unreachable."""
    response = requests.get(url or CATALOGUE_URL, timeout=timeout)
    if response.status_code != 200:
        raise ValueError(f"Request failed: HTTP {response.status_code} {response.reason}")
    return response.json()


def list_models() -> list[ConfigType]:
    """The online catalogue, or the bundled copy (with a warning) when the network cannot be reached."""
    try:
        return fetch_models()
    except (requests.RequestException, ValueError) as e:
        warnings.warn(f"could not fetch the online model list ({e}); using the copy bundled with this package",
                      stacklevel=2)
        return bundled_models()


def find_model(filename: str, models: list[ConfigType] | None = None) -> ConfigType | None:
    """The catalogue entry whose ``filename`` is exactly ``filename``, as a config dict (see ``to_config``)."""
    for entry in (bundled_models() if models is None else models):
        if entry.get("filename") == filename:
            return to_config(entry)
    return None


def to_config(entry: ConfigType) -> ConfigType:
    """A catalogue entry as GPT4All.config: SDK 2.8 rewrote ``promptTemplate`` to the ``{0}`` form, with a
    default when the entry has none; we keep doing that so code written for 2.8 reads the same values."""
    config = dict(entry)
    config["promptTemplate"] = catalogue_to_legacy(config.get("promptTemplate") or "%1") \
        if "promptTemplate" in config else DEFAULT_PROMPT_TEMPLATE
    return config


def append_extension_if_missing(model_name: str) -> str:
    """'.gguf' is optional in a model name (upstream also accepts the old '.bin')."""
    return model_name if model_name.endswith((".bin", ".gguf")) else model_name + ".gguf"


def retrieve_model(model_name: str, model_dir: str | Path, *, allow_download: bool = True,
                   verbose: bool = False) -> ConfigType:
    """Find ``model_name`` in ``model_dir`` (download it there if missing and allowed); return its config.

    Only a download touches the network: the config comes from the bundled catalogue, and from the online one
    only when the model is missing from disk *and* unknown to the bundled copy.
    """
    from .download import download_model   # late import: downloading is the rare path

    filename = append_extension_if_missing(str(model_name))
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise FileNotFoundError(f"Model directory does not exist: {str(model_dir)!r}")

    config: ConfigType = find_model(filename) or {}
    destination = model_dir / filename
    if destination.exists():
        if verbose:
            print(f"Found model file at {str(destination)!r}", file=sys.stderr)
    elif not allow_download:
        raise FileNotFoundError(f"Model file does not exist: {str(destination)!r}")
    else:
        if not config:   # not in our copy: perhaps the online catalogue has learnt of it since
            config = find_model(filename, fetch_models()) or {}
        filesize = config.get("filesize")
        destination = Path(download_model(filename, model_dir, verbose=verbose, url=config.get("url"),
                                          expected_size=None if filesize is None else int(filesize),
                                          expected_md5=config.get("md5sum")))
    config["path"] = str(destination)
    return config
