"""Label Studio: tasks to import into it (labels as pre-annotations) and its JSON export read back.

Export: one task per labeled image, ``data.image`` the image's URL for Label Studio,
``data.banana_path`` its path relative to the project root, and the labels as a
*prediction* (``model_version`` :data:`MODEL_VERSION`), which Label Studio imports as a
pre-annotation that a labeler accepts or corrects.

Import: a task's label is its newest annotation that was not cancelled; a task with
none is read from a prediction of :data:`MODEL_VERSION` (banana's own labels coming
back untouched), never from another model's predictions.

Images uploaded to Label Studio (rather than served from local-files or cloud storage) come
back as ``/data/upload/<project id>/<8 hex digits>-<file name>``: Label Studio keeps only the
original file name, behind a random prefix, so :func:`uploaded_file_name` recovers that name and
the importer matches it against the items' file names (see ``services.transfer.export._path_resolver``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from services.errors import UserError
from services.transfer import json_records

MODEL_VERSION = "banana-labels"
FROM_NAME, TO_NAME = "label", "image"  # the names in the labeling config below
LOCAL_FILES = "/data/local-files/?d="
# Label Studio stores an upload as upload/<project id>/<uuid4()[:8]>-<file name> under MEDIA_ROOT,
# served under /data/ (data_import.models.upload_name_generator); a URL may put a host or a
# script name in front.
_UPLOAD = re.compile(r"(?:^|/)data/upload/\d+/[0-9a-fA-F]{8}-(?P<name>[^/]+)$")


@dataclass(frozen=True)
class TaskLabel:
    """One task of an export: the line it starts on, the image's path as the task names it, and
    its class names (empty when the task has no label)."""

    line: int
    path: str
    labels: tuple[str, ...]


def to_tasks(
    paths_and_labels: Sequence[tuple[str, Sequence[str]]],
    *,
    image_prefix: str,
    model_version: str = MODEL_VERSION,
    scores: Sequence[float] | None = None,
) -> str:
    """Label Studio import JSON: ``data.image`` is ``image_prefix`` + the URL-quoted path; the
    labels are a prediction of ``model_version`` (with its score, if given; none when empty)."""
    tasks = []
    for n, (path, labels) in enumerate(paths_and_labels):
        predictions: list[dict[str, object]] = []
        task = {"data": {"image": image_prefix + quote(path), "banana_path": path}, "predictions": predictions}
        if labels:
            result = [
                {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": list(labels)}}
            ]
            score = 1.0 if scores is None else scores[n]
            predictions.append(
                {
                    "model_version": model_version,
                    "result": result,
                    **({"score": float(score)} if score == score else {}),
                }
            )  # NaN: no score
        tasks.append(task)
    return json.dumps(tasks, indent=1)


def default_image_prefix(root: str) -> str:
    """Local-files URLs that work with ``LOCAL_FILES_DOCUMENT_ROOT=/``."""
    return LOCAL_FILES + quote(root.strip("/")) + "/"


def labeling_config(class_names: Sequence[str], *, multi_label: bool) -> str:
    """The labeling config (XML) whose names match the exported tasks."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in class_names)
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="{"multiple" if multi_label else "single"}">\n'
        f"{choices}\n  </Choices>\n</View>\n"
    )


def read_tasks(text: str, file_name: str) -> list[TaskLabel]:
    """Every task of a Label Studio JSON export; a malformed task is a UserError naming its line."""
    tasks = json_records.load(text, file_name)
    if not isinstance(tasks, list):
        raise UserError(
            f"{file_name}, line 1: a Label Studio export is a JSON list of tasks; "
            "export the project with the JSON format (not JSON-MIN or CSV)"
        )
    return [_task_label(task, line, file_name) for line, task in zip(json_records.array_lines(text), tasks)]


def _task_label(task, line: int, file_name: str) -> TaskLabel:
    where = f"{file_name}, line {line}"
    data = task.get("data") if isinstance(task, dict) else None
    data = data if isinstance(data, dict) else {}
    ours, image = data.get("banana_path"), data.get("image")
    if isinstance(ours, str) and ours.strip():
        path = ours
    elif isinstance(image, str) and image.strip():
        path = image_path(image)
    else:
        raise UserError(
            f"{where}: the task has no data.image; each task needs the image's path or URL in "
            "data.image (export with the JSON format, not JSON-MIN)"
        )
    annotations = _list(task, "annotations", where)
    done = [a for a in annotations if not a.get("was_cancelled")]
    if done:
        labels = _choices(max(enumerate(done), key=_recency)[1], where)
    else:
        ours = [p for p in _list(task, "predictions", where) if p.get("model_version") == MODEL_VERSION]
        labels = _choices(ours[-1], where) if ours else ()
    return TaskLabel(line, path, labels)


def _recency(position_and_annotation: tuple[int, dict]) -> tuple:
    """Newest by time of the last change, then by id, then by place in the list."""
    position, annotation = position_and_annotation
    stamp = annotation.get("updated_at") or annotation.get("created_at") or ""
    number = str(annotation.get("id", ""))  # an int, or a string of digits in some exports
    return str(stamp), int(number) if number.isdigit() else -1, position


def _list(task: dict, key: str, where: str) -> list[dict]:
    value = task.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UserError(f"{where}: the task's {key} must be a list of objects")
    return value


def _choices(annotation: dict, where: str) -> tuple[str, ...]:
    """The class names chosen in an annotation's (or prediction's) results."""
    results = annotation.get("result") or []
    names: set[str] = set()
    for result in results if isinstance(results, list) else [None]:
        value = result.get("value") if isinstance(result, dict) else None
        if not isinstance(value, dict):
            raise UserError(
                f"{where}: a result has no value object; results must look like "
                '{"type": "choices", "value": {"choices": ["cat"]}}'
            )
        choices = value.get("choices", [])
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise UserError(f"{where}: value.choices must be a list of class names")
        names.update(c.strip() for c in choices if c.strip())
    return tuple(sorted(names))


def image_path(reference: str) -> str:
    """The file path in an image reference: a local-files URL's ``d``, another URL's path, or the path itself."""
    parts = urlsplit(reference)
    if parts.path.rstrip("/").endswith("/data/local-files") and "d" in parse_qs(parts.query):
        return parse_qs(parts.query)["d"][0]
    if parts.scheme in ("http", "https", "s3", "gs", "azure-blob"):
        return unquote(parts.path).lstrip("/")
    return reference


def uploaded_file_name(path: str) -> str | None:
    """The original file name in the path of an image uploaded to Label Studio
    (``/data/upload/3/8f3e2a1b-cat 1.jpg`` as :func:`image_path` gives it), as Label Studio stored
    it (see :func:`stored_file_name`); None for any other path."""
    match = _UPLOAD.search(path.replace("\\", "/"))
    return stored_file_name(unquote(match["name"])) if match else None


def stored_file_name(name: str) -> str:
    """A file name as Label Studio's storage (Django's ``get_valid_filename``) keeps an upload's:
    spaces made underscores, anything but letters, digits, ``-``, ``_`` and ``.`` dropped."""
    return re.sub(r"[^-\w.]", "", name.strip().replace(" ", "_"))
