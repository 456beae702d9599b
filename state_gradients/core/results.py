"""Machine-readable results: the small JSON file a tool writes beside its printed log (--result FILE), and its schema."""
# A result file is one JSON object:
#   {"schema": "state-gradients result", "version": 1, "tool": TOOL, ...fields}
# The printed output of each tool keeps the original's format for people who read or parse it;
# the pipeline (sg-reproduce, sg-report) reads only these files. Fields by tool (numbers are
# JSON numbers; NaN is written as null):
#
#   main.py            valid_perplexity (of the evaluation or gradient pass; null when none ran, as
#                      after training, whose per-epoch values are in its log), test_perplexity (float or
#                      null), config (the config file's path), epochs_done (int, the model's latest
#                      epoch-N; 0 for an export or an import)
#   sg-build-pos-mapping   mapping (the file written), words, tagged (vocabulary words with tags),
#                      coverage (null, or {text, tokens, covered, percent}: the share of TEXT's
#                      tokens, <eos> excluded, whose word got a tag)
#   sg-pos-classifier  examples, train, valid, test (counts), labels (distinct tags), best_cv_score (float), scores
#                      {set: accuracy} and baselines {set: {accuracy, tag}} (the majority tag),
#                      for the sets valid and test
#   sg-relative-memory      class (null: all words), delays [K], relative_memory [K]
#   sg-cos-subspace-diff-vector  class, columns (THR), delays [K], cosine [K], percent [K]
#   provenance         (DIR/provenance.json of sg-reproduce and sg-demo) command (the command line as
#                      typed, or null), date (UTC, ISO 8601), tool_version (state-gradients), commit (git
#                      short hash of the source checkout, `+dirty` with changes; null when installed),
#                      python, and what the writer adds: epochs_done (the model's epochs)
import json
import math

from state_gradients.core.errors import UserError
from state_gradients.core.fileio import atomic_write_text

SCHEMA, VERSION = "state-gradients result", 1
PROVENANCE = "provenance.json"


def _clean(value):
    """NaN and infinities as null (JSON has no NaN); numpy scalars and arrays as Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_result(path, tool, **fields):
    """Write the result file of one run of `tool` (atomic; parent folders created)."""
    record = {"schema": SCHEMA, "version": VERSION, "tool": tool, **_clean(fields)}
    atomic_write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")


def write_provenance(directory, command, **fields):
    """DIR/provenance.json: how and with what a run was made (the report's header reads it)."""
    import datetime
    import os
    import platform

    from state_gradients.core import version

    write_result(os.path.join(directory, PROVENANCE), "provenance", command=command, tool_version=version.__version__,
                 commit=version.commit(), python=platform.python_version(),
                 date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **fields)


def read_result(path, tool):
    """The fields of a result file of `tool`; UserError naming the file when it is absent, another tool's, or not one."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run {tool} with --result {path} first") from None
    except ValueError as err:
        raise UserError(f"{path}: not a JSON result file ({err})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise UserError(f"{path}: not a {SCHEMA} file")
    if record.get("version") != VERSION or record.get("tool") != tool:
        raise UserError(f"{path}: a version {record.get('version')} result of {record.get('tool')}, expected "
                        f"version {VERSION} of {tool}")
    return {k: v for k, v in record.items() if k not in ("schema", "version", "tool")}


def read_result_if(path, tool):
    """read_result, or None when the file does not exist."""
    import os

    return read_result(path, tool) if os.path.isfile(path) else None
