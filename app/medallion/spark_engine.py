"""The Spark engine: PySpark Structured Streaming over the bronze record files, the dictionary's silver
rules in Spark SQL, and ``foreachBatch`` handing each micro-batch's classified rows to the shared sink.

The file source streams each record file once (its checkpoint under ``<out>/pipeline/spark-checkpoint``);
a file appears only inside a committed batch folder (renamed into ``raw/`` whole, ``_SUCCESS``
included). Files are read whole (``wholetext``) so each line keeps its 1-based number for the
quarantine. ``foreachBatch`` may run an epoch again after a crash: the sink's own progress ledger
skips the batches it already holds, so each is counted once. Delta's Spark jars cannot be fetched
from the registries this project installs from, so the tables are the same Parquet files the DuckDB
engine publishes (written by the sink, in one DuckDB transaction per micro-batch with the progress rows).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from app.core.errors import UsageError
from app.core.schema import STREAM_FIELDS, TIMESTAMP_PATTERN
from app.medallion import source
from app.medallion.rules import ID, WINDOW_FIELD, BronzeBatch

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from app.medallion.runner import Sink, Totals

SPARK_TIMESTAMP = "yyyy-MM-dd'T'HH:mm:ss.SSSX"


def session(master: str, app_name: str = "fleetgen-pipeline") -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError("--engine spark needs PySpark (pip install 'fleetgen[spark]') and Java 17") from None
    if master.startswith("local"):  # a laptop's hostname often resolves to loopback: say so instead of warning
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (SparkSession.builder.master(master).appName(app_name)
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "4").config("spark.driver.memory", "2g")
             .config("spark.sql.ansi.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def classify(lines: DataFrame, stream: str) -> DataFrame:
    """(batch_id, line, text, window columns) → the same plus ``reason`` and the typed silver columns."""
    from pyspark.sql import functions as F

    fields = STREAM_FIELDS[stream]
    names = [f.name for f in fields]
    df = lines.withColumn("keys", F.json_object_keys("text"))
    df = df.select("*", F.json_tuple("text", *names).alias(*[f"s_{n}" for n in names]))
    for f in fields:
        if f.parts:
            parts = [p for p, _, _ in f.parts]
            df = df.withColumn(f"keys_{f.name}", F.json_object_keys(F.col(f"s_{f.name}")))
            df = df.select("*", F.json_tuple(F.col(f"s_{f.name}"), *parts).alias(
                *[f"s_{f.name}__{p}" for p in parts]))
    pattern = TIMESTAMP_PATTERN
    for f in fields:
        if f.kind == "timestamp":
            parsed = F.try_to_timestamp(F.col(f"s_{f.name}"), F.lit(SPARK_TIMESTAMP))
            df = df.withColumn(f"ms_{f.name}", F.when(F.col(f"s_{f.name}").rlike(pattern), F.unix_millis(parsed)))
    # the order of the DuckDB rules: presence and JSON type of each field, then of the parts of a location
    checks: list[tuple[Column, str]] = []
    for f in fields:
        present = F.coalesce(F.array_contains(F.col("keys"), f.name), F.lit(False))  # not an object: no keys
        checks += [(~present, "FIELD_REMOVED"), (F.col(f"s_{f.name}").isNull(), "NULL_INJECTED")]
    for f in fields:
        text = F.col(f"s_{f.name}")
        if f.kind == "boolean":
            checks.append((~text.isin("true", "false"), "TYPE_MISMATCH"))
        elif f.kind == "integer":
            checks.append((~text.rlike(r"^-?\d+$"), "TYPE_MISMATCH"))
        elif f.kind == "location":
            checks.append((~text.startswith("{"), "TYPE_MISMATCH"))
        else:  # json_tuple gives a number's text as it gives a string's: look at the token itself
            token = r'(^|[{,])\s*"' + f.name + r'"\s*:\s*"'
            checks.append((~F.col("text").rlike(token), "TIMESTAMP_MALFORMED" if f.kind == "timestamp"
                           else "TYPE_MISMATCH"))
    for f in fields:
        for part, _, _ in f.parts:
            inner = F.coalesce(F.array_contains(F.col(f"keys_{f.name}"), part), F.lit(False))
            checks += [(~inner, "FIELD_REMOVED"), (F.col(f"s_{f.name}__{part}").isNull(), "NULL_INJECTED")]
    for f in fields:
        for part, _, _ in f.parts:
            number = r'"' + part + r'"\s*:\s*-?[0-9]'
            checks.append((~F.col(f"s_{f.name}").rlike(number), "TYPE_MISMATCH"))
    for f in fields:
        if f.kind == "timestamp":
            checks.append((F.col(f"ms_{f.name}").isNull(), "TIMESTAMP_MALFORMED"))
    for f in fields:
        if f.kind == "enum":
            checks.append((~F.col(f"s_{f.name}").isin(*f.values), "ENUM_OUT_OF_DOMAIN"))
    instant = F.col(f"ms_{WINDOW_FIELD[stream]}")
    checks.append(((instant < F.col("accepts_from_ms")) | (instant >= F.col("window_end_ms")),
                   "TIMESTAMP_OUTSIDE_WINDOW"))
    for f in fields:
        for part, low, high in f.parts:
            value = F.col(f"s_{f.name}__{part}").try_cast("double")
            checks.append((~value.between(low, high), "LATITUDE_OUT_OF_RANGE" if part == "lat"
                           else "LONGITUDE_OUT_OF_RANGE"))
        if f.kind == "integer" and f.minimum is not None and f.maximum is not None:
            count = F.col(f"s_{f.name}").try_cast("decimal(38,0)")
            checks.append((~count.between(f.minimum, f.maximum), "NEGATIVE_COUNT"))
    reason: Any = None
    for condition, code in checks:
        reason = (F.when(condition, code) if reason is None else reason.when(condition, code))
    return df.withColumn("reason", reason).withColumn("record_id", F.col(f"s_{ID[stream]}"))


def typed(df: DataFrame, stream: str) -> DataFrame:
    """A valid row's silver columns, in the order of the state's silver table."""
    from pyspark.sql import functions as F

    columns = []
    for f in STREAM_FIELDS[stream]:
        if f.kind == "timestamp":
            columns.append(F.timestamp_millis(F.col(f"ms_{f.name}")).alias(f.name))
        elif f.kind == "location":
            columns.append(F.struct(*[F.col(f"s_{f.name}__{p}").cast("double").alias(p) for p, _, _ in f.parts])
                           .alias(f.name))
        elif f.kind == "boolean":
            columns.append(F.col(f"s_{f.name}").cast("boolean").alias(f.name))
        elif f.kind == "integer":
            columns.append(F.col(f"s_{f.name}").cast("int").alias(f.name))
        else:
            columns.append(F.col(f"s_{f.name}").alias(f.name))
    columns.append(F.col("batch_id"))
    if stream == "events":
        width = F.col("window_end_ms") - F.col("window_start_ms")
        own = F.floor(F.col(f"ms_{WINDOW_FIELD[stream]}") / width) * width
        columns.append(F.timestamp_millis(own.cast("long")).alias("window_start"))
    return df.select(*columns)


def _lines(files: DataFrame, batches: list[BronzeBatch], spark: SparkSession) -> DataFrame:
    """Every non-empty line of the micro-batch's files with its batch's window, 1-based line numbers."""
    from pyspark.sql import functions as F

    windows = spark.createDataFrame(
        [(str(b.record_file), b.batch_id, b.window_start_ms, b.window_end_ms, b.accepts_from_ms) for b in batches],
        "path string, batch_id string, window_start_ms long, window_end_ms long, accepts_from_ms long")
    exploded = files.select("path", F.posexplode(F.split(F.col("value"), "\n")).alias("position", "text"))
    return (exploded.where(F.length("text") > 0).withColumn("line", F.col("position") + 1)
            .join(F.broadcast(windows), "path"))


def run_spark(sink: Sink, once: bool, stop: threading.Event) -> Totals:
    from pyspark.sql import functions as F

    spark = session(sink.options.master)
    depth = "*/*/*" if sink.layout.partitioning == "hive" else "*"
    pattern = str(sink.layout.raw / "*" / depth / f"*.{sink.layout.record_format}")
    local_path = F.url_decode(F.regexp_replace(F.col("_metadata.file_path"), "^file:/+", "/"))
    files = (spark.readStream.format("text").option("wholetext", "true").load(pattern)
             .select(local_path.alias("path"), "value"))

    def each_micro_batch(frame: DataFrame, epoch_id: int) -> None:
        frame = frame.persist()
        try:
            batches = _new_batches(sink, [row.path for row in frame.select("path").collect()])
            if not batches:
                return
            lines = _lines(frame, batches, spark)
            results: dict[str, tuple[pa.Table, pa.Table]] = {}
            for stream in {b.stream for b in batches}:
                mine = [str(b.record_file) for b in batches if b.stream == stream]
                classified = classify(lines.where(F.col("path").isin(mine)), stream).persist()
                valid = typed(classified.where(F.col("reason").isNull()), stream).toArrow()
                rejected = (classified.where(F.col("reason").isNotNull())
                            .select("batch_id", F.col("line").cast("long").alias("line"), "record_id", "reason",
                                    F.col("text").alias("record")).toArrow())
                classified.unpersist()
                results[stream] = (valid, rejected)
            sink.absorb(batches, silver_of=lambda stream, _mine: results[stream])
        finally:
            frame.unpersist()

    writer = (files.writeStream.foreachBatch(each_micro_batch)
              .option("checkpointLocation", str(sink.out / "pipeline" / "spark-checkpoint")))
    if once:
        query = writer.trigger(availableNow=True).start()
        query.awaitTermination()
    else:
        query = writer.trigger(processingTime=f"{max(1, int(sink.options.trigger_s * 1000))} milliseconds").start()
        while not stop.is_set() and query.isActive:
            stop.wait(0.2)
            if sink.check_due():
                sink.run_check()
        query.stop()
    if query.exception() is not None:
        raise RuntimeError(f"the Spark query failed: {query.exception()}")
    if sink.check_due(force=once):
        sink.run_check()
    return sink.totals


def _new_batches(sink: Sink, paths: list[str]) -> list[BronzeBatch]:
    """The bronze batches behind ``paths`` that the sink has not processed (an epoch replayed after a
    crash finds its batches already there)."""
    from pathlib import Path

    found = []
    for path in sorted(set(paths)):
        folder = Path(path).parent
        stream = next((s for s in ("companies", "events") if Path(path).name == sink.layout.record_file(s)), None)
        if stream is None:
            continue
        batch_id = folder.name.removeprefix("batch_id=")
        if (stream, batch_id) in sink.processed:
            continue
        batch = source.read_batch(sink.layout, stream, batch_id, folder)
        if batch is not None:
            found.append(batch)
    return sorted(found, key=lambda b: (b.stream, b.batch_id))


