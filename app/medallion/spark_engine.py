"""The Spark engine: PySpark Structured Streaming over the bronze record files, the dictionary's silver
rules in Spark SQL, and ``foreachBatch`` handing each micro-batch's classified rows to the shared sink.

The file source streams each record file once (checkpoint: ``<out>/pipeline/spark-checkpoint``); a
file appears only inside a committed batch folder (renamed into ``raw/`` whole, ``_SUCCESS``
included). Lines are read in parallel, one row each, and numbered from the pieces Spark read each
file in, so a quarantined line keeps its 1-based number. ``foreachBatch`` may run an epoch again
after a crash: the sink's own progress ledger skips the batches it already holds, so each is counted
once. Delta's Spark jars cannot be fetched
from the registries this project installs from, so the tables are the same Parquet files the DuckDB
engine publishes (written by the sink, in one DuckDB transaction per micro-batch with the progress rows).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from app.core.errors import UsageError
from app.core.schema import STREAM_FIELDS, TIMESTAMP_PATTERN
from app.medallion.rules import ID, WINDOW_FIELD, BronzeBatch

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from app.medallion.runner import Sink, Totals

log = logging.getLogger("app.pipeline")
STOP_WAIT_S = 60.0
PIECE_BYTES = 128 * 2**20  # spark.sql.files.maxPartitionBytes: a file up to this size is read in one piece
ROW_MASK = (1 << 33) - 1  # monotonically_increasing_id: partition in the upper 31 bits, row in the lower 33
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
             .config("spark.sql.files.maxPartitionBytes", str(PIECE_BYTES))
             .config("spark.sql.files.openCostInBytes", str(PIECE_BYTES))  # one piece of one file per partition
             # the file source lists every batch folder each trigger: with more than 32 folders Spark would list
             # them with a distributed job (~1 s on local[2], growing); on the driver it takes ~0.1 s
             .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1000000")
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


def typed_columns(stream: str) -> list[Column]:
    """A valid row's silver columns, in the order of the state's silver table."""
    from pyspark.sql import functions as F

    columns = []
    for f in STREAM_FIELDS[stream]:
        if f.kind == "timestamp":
            columns.append(F.timestamp_millis(F.col(f"ms_{f.name}")).alias(f.name))
        elif f.kind == "location":
            columns.append(F.struct(*[F.col(f"s_{f.name}__{p}").try_cast("double").alias(p) for p, _, _ in f.parts])
                           .alias(f.name))
        elif f.kind == "boolean":
            columns.append(F.col(f"s_{f.name}").try_cast("boolean").alias(f.name))
        elif f.kind == "integer":
            columns.append(F.col(f"s_{f.name}").try_cast("int").alias(f.name))
        else:
            columns.append(F.col(f"s_{f.name}").alias(f.name))
    columns.append(F.col("batch_id"))
    if stream == "events":
        width = F.col("window_end_ms") - F.col("window_start_ms")
        own = F.floor(F.col(f"ms_{WINDOW_FIELD[stream]}") / width) * width
        columns.append(F.timestamp_millis(own.cast("long")).alias("window_start"))
    return columns


def _numbered(frame: DataFrame, paths: list[str]) -> tuple[DataFrame, DataFrame | None]:
    """Each line of the micro-batch's files (one row per line, read in parallel) with its 1-based line
    number. The session gives every partition one piece of one file (``openCostInBytes`` =
    ``maxPartitionBytes``), and ``monotonically_increasing_id`` numbers the rows of a partition from 0
    in its upper bits' partition: a file read in one piece (any file up to ``maxPartitionBytes``) needs
    nothing more. A larger file's pieces are counted first (one small aggregation) and each piece starts
    where the previous one ended."""
    from pyspark.sql import functions as F

    row_id = F.monotonically_increasing_id()
    largest = max((os.path.getsize(p) for p in paths), default=0)
    if largest <= PIECE_BYTES:
        return (frame.select("path", F.col("value").alias("text"), (row_id.bitwiseAND(F.lit(ROW_MASK)) + 1)
                             .alias("line")).where(F.length("text") > 0)), None
    tagged = frame.select("path", "value", row_id.alias("row_id"), F.spark_partition_id().alias("part")).persist()
    pieces = tagged.groupBy("path", "part").agg(F.count("*").alias("rows"), F.min("row_id").alias("first")).collect()
    starts = {}
    for path in sorted({piece.path for piece in pieces}):
        before = 0
        for piece in sorted((p for p in pieces if p.path == path), key=lambda p: p.part):
            starts[f"{path}\0{piece.part}"] = piece.first - before
            before += piece.rows
    # a literal map rather than a join: no broadcast to collect, no extra Spark job
    piece_key = F.concat_ws("\0", F.col("path"), F.col("part").cast("string"))
    return (tagged.select("path", F.col("value").alias("text"),
                          (F.col("row_id") - F.element_at(_literal_map(starts), piece_key) + 1).alias("line"))
            .where(F.length("text") > 0)), tagged


def _literal_map(values: dict[str, Any]) -> Column:
    from pyspark.sql import functions as F

    return F.create_map(*[item for key, value in values.items() for item in (F.lit(key), F.lit(value))])


def run_spark(sink: Sink, once: bool, stop: threading.Event) -> Totals:
    from pyspark.sql import functions as F

    spark = session(sink.options.master)
    depth = "*/*/*" if sink.layout.partitioning == "hive" else "*"
    pattern = str(sink.layout.raw / "*" / depth / f"*.{sink.layout.record_format}")
    local_path = F.url_decode(F.regexp_replace(F.col("_metadata.file_path"), "^file:/+", "/"))
    files = spark.readStream.format("text").load(pattern).select(local_path.alias("path"), "value")

    def each_micro_batch(frame: DataFrame, epoch_id: int) -> None:
        began = time.perf_counter()
        # Which files this micro-batch holds is not known without a Spark job (inputFiles() is empty for a
        # stream): the committed batches not yet processed are a superset (Spark planned the micro-batch
        # before this runs), and the batches found in the collected rows are the micro-batch's own.
        batches = sink.pending()
        if not batches:
            return
        numbered, cached = _numbered(frame, [str(b.record_file) for b in batches])
        numbered_at = time.perf_counter()
        try:
            by_path = {str(b.record_file): b for b in batches}
            lines = numbered.where(F.col("path").isin(list(by_path))).select(
                "*", *[F.element_at(_literal_map({p: getattr(b, name) for p, b in by_path.items()}),
                                    F.col("path")).alias(name)
                       for name in ("batch_id", "window_start_ms", "window_end_ms", "accepts_from_ms")])
            rejected_text = F.when(F.col("reason").isNotNull(), F.col("text")).alias("record")
            parts, typed_names = [], {}
            for stream in sorted({b.stream for b in batches}):
                mine = [str(b.record_file) for b in batches if b.stream == stream]
                classified = classify(lines.where(F.col("path").isin(mine)), stream)
                typed = classified.select(*typed_columns(stream), F.col("reason"), F.col("line").cast("long"),
                                          F.col("record_id"), rejected_text, F.lit(stream).alias("stream"))
                typed_names[stream] = typed.columns[:-5]
                parts.append(typed)
            # one Spark job for the micro-batch: every row of both streams comes back at once, split here
            every = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1], allowMissingColumns=True)
            collected = every.toArrow()
            results: dict[str, tuple[pa.Table, pa.Table]] = {}
            for stream, names in typed_names.items():
                mine_rows = collected.filter(pc.equal(collected["stream"], stream))
                valid_rows = pc.is_null(mine_rows["reason"])
                results[stream] = (mine_rows.filter(valid_rows).select(names),
                                   mine_rows.filter(pc.invert(valid_rows)).select(
                                       ["batch_id", "line", "record_id", "reason", "record"]))
            found = {(stream, batch_id) for stream, (valid, rejected) in results.items()
                     for table in (valid, rejected) for batch_id in pc.unique(table["batch_id"]).to_pylist()}
            # an empty file has no row to show it was in the micro-batch; taking it now or later is the same
            delivered = [b for b in batches if (b.stream, b.batch_id) in found or b.record_count == 0]
            classified_at = time.perf_counter()
            if delivered:
                sink.absorb(delivered, silver_of=lambda stream, mine: _only(results[stream], mine))
            log.debug("spark micro-batch %d: numbering %.3f s, rules and collect %.3f s, sink %.3f s", epoch_id,
                      numbered_at - began, classified_at - numbered_at, time.perf_counter() - classified_at)
        finally:
            if cached is not None:
                cached.unpersist()

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
        deadline = time.monotonic() + STOP_WAIT_S  # let the micro-batch in hand finish: stopping cancels it
        while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
            time.sleep(0.05)
        query.stop()
    for progress in query.recentProgress[-3:]:
        log.debug("spark progress: %s", progress["durationMs"])
    if query.exception() is not None:
        raise RuntimeError(f"the Spark query failed: {query.exception()}")
    if sink.check_due(force=once):
        sink.run_check()
    return sink.totals


def _only(tables: tuple[pa.Table, pa.Table], batches: list[BronzeBatch]) -> tuple[pa.Table, pa.Table]:
    ids = pa.array(sorted({b.batch_id for b in batches}), pa.string())
    valid, rejected = (t.filter(pc.is_in(t["batch_id"], value_set=ids)) for t in tables)
    return valid, rejected
