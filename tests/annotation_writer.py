"""Child process of the crash-safety test.

Usage: python -m tests.annotation_writer BANANA_HOME ITEM_ID... ; labels the items
in turn, forever, printing ``annotation_id item_id class`` after each commit.
"""

import sys
from itertools import count, cycle
from pathlib import Path

from services.config import Settings
from services.database import open_database
from tests.labels_by_name import record_annotation

CLASSES = ("cat", "dog")


def main(home: str, item_ids: list[int]) -> None:
    with open_database(Settings(home=Path(home))) as db:
        for n, item_id in zip(count(), cycle(item_ids)):
            label = CLASSES[n % len(CLASSES)]
            annotation_id = record_annotation(
                db, item_id=item_id, class_names=[label], annotator="writer", duration_ms=n
            )
            print(annotation_id, item_id, label, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(arg) for arg in sys.argv[2:]])
