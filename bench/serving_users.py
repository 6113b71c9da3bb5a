"""Locust users of ``bench/serving.py``: closed-loop clients of ``samplehub serve``.

Run by ``bench/serving.py`` (``locust -f bench/serving_users.py --headless ...``), which
writes the request plan (``--plan``, JSON: labels, filters, sample ids, upload files) and
reads back every request's end time, name, latency and outcome (``--requests-log``), from
which it computes its own qps and percentiles. Each user sends its next request as soon as
the last one answered (``wait_time`` 0: a closed loop, the load the main paper's 140
parallel requests are).

Mixes (``--mix``):

* ``queries``: 45 % label queries without filters, 15 % each with a bbox, a time range and
  both, 10 % query-by-image by ``sample_id``; one of the ten common labels each, exact
  matches paged to 100 and up to 100 supplementary samples (``k``).
* ``uploads``: query-by-image with an uploaded image file (the server encodes it).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task
from locust.env import Environment

K = 100
LOG: list[tuple[float, str, float, int]] = []  # end time, name, latency (ms), failed


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--plan", default="", help="request plan JSON written by serving.py")
    parser.add_argument("--requests-log", default="", help="where to write every request")
    parser.add_argument("--mix", default="queries", choices=["queries", "uploads"])


@events.request.add_listener
def _record(name: str, response_time: float, exception: BaseException | None,
            **_: Any) -> None:
    LOG.append((time.time(), name, float(response_time), int(exception is not None)))


@events.quitting.add_listener
def _write(environment: Environment, **_: Any) -> None:
    path = environment.parsed_options.requests_log if environment.parsed_options else ""
    if path:
        Path(path).write_text(json.dumps(LOG))


class Client(FastHttpUser):
    """One closed-loop client."""

    def wait_time(self) -> float:
        """No think time: the next request leaves when the last one answered."""
        return 0.0

    def on_start(self) -> None:
        """Read the plan; each user draws from it with its own seeded generator."""
        options = self.environment.parsed_options
        self.plan = json.loads(Path(options.plan).read_text())
        self.mix = options.mix
        self.rng = random.Random(id(self))
        self.uploads = [Path(p).read_bytes() for p in self.plan.get("uploads", [])]

    @task
    def request(self) -> None:
        """One request of the mix."""
        if self.mix == "uploads":
            self.upload()
            return
        draw = self.rng.random()
        if draw < 0.10:
            sample_id = self.rng.choice(self.plan["sample_ids"])
            self.post("/query/image", "by_sample", data={"sample_id": str(sample_id), "k": str(K)})
            return
        body: dict[str, Any] = {"labels": [self.rng.choice(self.plan["labels"])], "k": K,
                                "exact_limit": K}
        name = "label"
        if draw >= 0.55:
            name, constraints = self.rng.choice(
                [("label_bbox", "bbox"), ("label_time", "time"), ("label_bbox_time", "both")]
            )
            window = self.rng.choice(self.plan["filters"])
            body["constraints"] = {
                "bbox": {"bbox": window["bbox"]},
                "time": {"time": window["time"]},
                "both": window,
            }[constraints]
        self.post("/query", name, json=body)

    def upload(self) -> None:
        """Query-by-image with one of the plan's image files."""
        image = self.rng.choice(self.uploads)
        self.post("/query/image", "upload", files={"file": ("view.png", image, "image/png")},
                  data={"k": str(K)})

    def post(self, path: str, name: str, **kwargs: Any) -> None:
        """POST ``path``; anything but 200 is a failure named by its status and text."""
        with self.client.post(path, name=name, catch_response=True, **kwargs) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
