"""The ``seed`` case: ``sagebridge crm seed`` loading a Data Loader export into real Redis.

An export of a CRM's contacts runs to hundreds of thousands of rows; the command must stream it
(memory flat in the number of rows) and write it in pipelined batches (rows/s bound by Redis,
not by round trips). Measured as an operator runs it: the real command in its own process, on a
generated CSV in Data Loader's format (upper-case API names, every value quoted), its wall
time, rows/s and peak RSS (``VmHWM``, read while it runs).
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from service.dev.devstack import forget_keys
from service.dev.processes import REPO, peak_rss_bytes
from service.state.epoch import Epoch

SEED = "seed"
SEED_ROWS = 200_000
QUICK_SEED_ROWS = 2_000
MIB = 1024 * 1024
COLUMNS = (
    "ID", "ACCOUNTID", "SALUTATION", "FIRSTNAME", "LASTNAME", "TITLE", "MAILINGSTREET",
    "MAILINGCITY", "MAILINGSTATECODE", "MAILINGPOSTALCODE", "MAILINGCOUNTRYCODE", "PHONE",
    "MOBILEPHONE", "EMAIL", "DESCRIPTION", "CREATEDDATE", "LASTMODIFIEDDATE",
)  # fmt: skip


@dataclass(frozen=True)
class SeedFigures:
    rows: int
    seconds: float
    file_mb: float
    peak_rss_mb: float
    images: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def write_export(path: Path, rows: int) -> None:
    """A Data Loader-style contact export of ``rows`` rows (some values empty, as nulls are)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(COLUMNS)
        for n in range(rows):
            writer.writerow(
                (
                    f"003Dn{n:010d}AAA",
                    "001Dn00000ACMEaIAG",
                    "Ms." if n % 2 else "",
                    f"First{n}",
                    f"Last, {n}",
                    "Buyer",
                    f"{n} Harbour Road",
                    "Portland",
                    "OR",
                    "97201",
                    "US",
                    f"(503) 555-{n % 10000:04d}",
                    "",
                    f"c{n}@example.com",
                    'Met at the "Expo"' if n % 3 == 0 else "",
                    "2026-12-01T12:00:00.000Z",
                    "2026-12-01T12:00:00.000Z",
                )
            )


async def measure_seed(redis_url: str, rows: int) -> SeedFigures:
    """Run ``sagebridge crm seed salesforce_contact`` on ``rows`` generated rows."""
    prefix = f"bench-seed-{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(redis_url)
    try:
        await Epoch(redis, prefix, quarantine_s=1.0).establish()  # as a running service does
        with tempfile.TemporaryDirectory() as directory:
            export = Path(directory) / "contacts.csv"
            write_export(export, rows)
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "service", "crm", "seed", "salesforce_contact", str(export),
                cwd=REPO,
                env={**os.environ, "SAGEBRIDGE_REDIS_URL": redis_url,
                     "SAGEBRIDGE_REDIS_PREFIX": prefix},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            peak = 0
            waiting = asyncio.ensure_future(process.communicate())
            while not waiting.done():
                peak = max(peak, peak_rss_bytes(process.pid))
                await asyncio.wait([waiting], timeout=0.05)
            out, err = waiting.result()
            seconds = time.monotonic() - started
            if process.returncode != 0:
                raise RuntimeError(f"crm seed failed: {out.decode()}{err.decode()}")
            images = sum([1 async for _ in redis.scan_iter(match=f"{prefix}:image:*", count=5000)])
            size = export.stat().st_size
    finally:
        await redis.aclose()
        await forget_keys(redis_url, prefix)
    return SeedFigures(rows, seconds, size / MIB, peak / MIB, images)


def seed_lines(figures: SeedFigures) -> list[str]:
    return [
        f"{SEED:>16}  {figures.rows:,} rows ({figures.file_mb:.1f} MiB CSV) in "
        f"{figures.seconds:.1f} s: {figures.rows_per_s:,.0f} rows/s, peak RSS "
        f"{figures.peak_rss_mb:.0f} MiB, {figures.images:,} images in Redis"
    ]


def seed_markdown(figures: SeedFigures) -> list[str]:
    return [
        f"## CRM seed ({SEED})",
        "",
        "`sagebridge crm seed salesforce_contact FILE` as an operator runs it, in its own "
        "process, on a generated Data Loader export (upper-case API names, every value quoted), "
        "into real Redis. Peak RSS is the command's `VmHWM`.",
        "",
        "| rows | CSV MiB | seconds | rows/s | peak RSS MiB | images |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {figures.rows:,} | {figures.file_mb:.1f} | {figures.seconds:.1f} | "
        f"{figures.rows_per_s:,.0f} | {figures.peak_rss_mb:.0f} | {figures.images:,} |",
        "",
    ]
