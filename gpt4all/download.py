"""Downloading a model file: streamed, resumable, verified, and only visible once complete.

The bytes go to ``<name>.part`` beside the destination.  If the connection drops (or the server goes silent for
longer than the read timeout) the download continues from the bytes already on disk with an HTTP ``Range``
request - within this run, and across runs too, since an interrupted download leaves its ``.part`` file behind.
When the server has sent everything, the size and MD5 given by the catalogue are checked and only then is the file
renamed to its final name, so a model file that exists is always a complete one.  A file that fails the checks is
deleted: resuming it could never fix it.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

DEFAULT_URL = "https://gpt4all.io/models/gguf/{filename}"
BLOCK_SIZE = 1 << 20            # at most 1 MiB per read
TIMEOUT_S = (10.0, 60.0)        # (connect, read): a server silent for a minute mid-file is treated as a dropped line
MAX_ATTEMPTS_WITHOUT_PROGRESS = 2


class _Interrupted(Exception):
    """The server ended the response before the promised number of bytes."""


def _open_response(url: str, offset: int, timeout) -> requests.Response:
    headers = {"Accept-Encoding": "identity"}   # a compressed body would make byte offsets meaningless
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = requests.get(url, stream=True, headers=headers, timeout=timeout)
    if response.status_code not in (200, 206, 416):
        response.close()
        raise ValueError(f"Request failed: HTTP {response.status_code} {response.reason}")
    if (encoding := response.headers.get("Content-Encoding")) not in (None, "identity"):
        response.close()
        raise ValueError(f"Expected identity Content-Encoding, got {encoding}")
    return response


def _resumed_total(response: requests.Response, offset: int) -> int | None:
    """For a 206 answer: the full file size it announces (None if unknown); ValueError if it is not our range."""
    content_range = response.headers.get("Content-Range", "")      # "bytes 1000-4999/5000"
    if not content_range.startswith(f"bytes {offset}-"):
        raise ValueError(f"server answered range {content_range!r} to a request for bytes {offset}-")
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _md5_of(path: Path, size: int) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f, tqdm(desc="Verifying", total=size, unit="iB", unit_scale=True) as bar:
        while block := f.read(BLOCK_SIZE):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def download_model(model_filename: str, model_path: str | os.PathLike[str], verbose: bool = True,
                   url: str | None = None, expected_size: int | None = None, expected_md5: str | None = None,
                   *, timeout=None) -> str | os.PathLike[str]:
    """Download ``model_filename`` into the directory ``model_path``; return the final file's path.

    Raises ValueError for an HTTP error, a wrong size or a wrong MD5 (the partial file is then deleted), and
    RuntimeError when the server keeps failing without sending anything new (the partial file is kept, and the
    next call resumes it).
    """
    url = url or DEFAULT_URL.format(filename=model_filename)
    timeout = timeout or TIMEOUT_S
    destination = Path(model_path) / model_filename
    partial = Path(model_path) / (model_filename + ".part")

    offset = partial.stat().st_size if partial.exists() else 0     # bytes already on disk from an earlier run
    if expected_size is not None and offset > expected_size:
        offset = 0                                                 # not a prefix of this file: start over
    if offset and verbose:
        print(f"Resuming the download of {model_filename} from byte {offset}", file=sys.stderr)

    total = expected_size
    attempts_without_progress = 0
    with open(partial, "r+b" if offset else "wb") as f, \
            tqdm(desc="Downloading", total=total, initial=offset, unit="iB", unit_scale=True) as bar:
        f.truncate(offset)
        f.seek(offset)
        while True:
            start = offset
            try:
                response = _open_response(url, offset, timeout)
                with response:
                    if response.status_code == 416:
                        # nothing after `offset`: the .part is already the whole file (checks below decide)
                        break
                    if response.status_code == 206:
                        total = _resumed_total(response, offset) or total
                    else:
                        if offset:   # the server ignored our Range header and sends the whole file again
                            f.seek(0)
                            f.truncate()
                            offset = start = 0
                            bar.reset()
                        if response.headers.get("Content-Length", "").isdigit():
                            total = int(response.headers["Content-Length"])
                    bar.total = total
                    # read1 returns whatever has arrived (iter_content would wait for a full block and lose
                    # the bytes it had buffered when the line drops); needs urllib3 >= 2
                    while block := response.raw.read1(BLOCK_SIZE):
                        f.write(block)
                        offset += len(block)
                        bar.update(len(block))
                    if total is not None and offset < total:
                        raise _Interrupted(f"connection closed after {offset} of {total} bytes")
                break
            except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError, _Interrupted) as e:
                f.flush()
                attempts_without_progress = 0 if offset > start else attempts_without_progress + 1
                if attempts_without_progress >= MAX_ATTEMPTS_WITHOUT_PROGRESS:
                    if verbose:
                        print(f"\nDownload stopped at byte {offset}; call again to resume from there.",
                              file=sys.stderr)
                    raise RuntimeError(f"Download not making progress, aborting ({e}).") from e
                if verbose:
                    print(f"\nDownload interrupted ({e}); resuming from byte {offset}", file=sys.stderr)
            except BaseException:
                # an HTTP error or a server that cannot resume: keep what we have only if it is something
                f.flush()
                if offset == 0:
                    f.close()
                    partial.unlink(missing_ok=True)
                raise
        f.flush()
        os.fsync(f.fileno())    # the rename below must never expose a file whose bytes are not on disk

    try:
        size = partial.stat().st_size
        if expected_size is not None and size != expected_size:
            raise ValueError(f"Expected file size of {expected_size} bytes, got {size}")
        if expected_md5 is not None and (md5 := _md5_of(partial, size)) != expected_md5.lower():
            raise ValueError(f"Expected MD5 hash of {expected_md5!r}, got {md5!r}")
    except ValueError:
        if verbose:
            print("Deleting the corrupt download...", file=sys.stderr)
        partial.unlink(missing_ok=True)
        raise

    os.replace(partial, destination)   # atomic: the final name appears only for a verified file
    if verbose:
        print(f"Model downloaded to {str(destination)!r}", file=sys.stderr)
    return destination
