"""The one import protocol every source layout goes through: convert, stage, self-check, reference-check, publish."""
# A layout (convert.py's recurrent sources, gpt2.py's Transformer checkpoints) supplies pure parts:
# the converted arrays, its self-check and reference check (each weights_path -> [check dict]), its
# report fields and the model keys of import.config. publish() does the rest, the same way for
# every layout: nothing is written to OUT but the report unless every check passes, and OUT
# appears whole (staged in a sibling folder, then moved in).
import json
import os
import shutil
import tempfile

from state_gradients.core import lm_data
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import IMPORT_CONFIG, IMPORT_REPORT, Checkpointer, SavedModel


def import_config_text(source_desc, notes, keys, eos=None, unk=None, tail=()):
    """import.config: a comment naming the source, `notes` (comment lines), then one `key value` line per
    (key, value, comment or None) of keys, eos_token / unk_token when given, and the lines of `tail`."""
    def line(key, value, comment=None):
        return f"{key} {value}" + (f"   # {comment}" if comment else "")
    lines = [f"# written by sg-import from {source_desc}"] + [f"# {note}" for note in notes]
    lines += [line(*k) for k in keys]
    lines += [line("eos_token", eos)] if eos is not None else []
    lines += [line("unk_token", unk)] if unk is not None else []
    lines += [line(*k) for k in tail]
    return "\n".join(lines) + "\n"


def publish(out, arrays, names, *, self_check, reference_check, reference, head, body, config):
    """Stage arrays in a folder beside OUT, run the checks, write OUT's files; returns (report, passed).

    Args:
        out: the new model folder (UserError when it already holds a model).
        arrays: the converted weights.npz arrays; names [V]: the vocabulary, row by row.
        self_check, reference_check: weights_path -> [check dict with "passed"] (the reference check
            with a second argument, the reference file, run only when `reference` is given).
        head, body: the report's fields before and after "passed" (the checks are added last).
        config: vocab_path -> import.config text (import_config_text), given OUT's dict path.
    """
    out_dir = os.path.abspath(out)
    final = SavedModel(out_dir)
    if os.path.isdir(out_dir) and final.holds_model:
        raise UserError(f"--out {out_dir} already holds an imported or trained model; choose another folder")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".sg-import-", dir=parent)
    try:
        staged = SavedModel(staging)
        weights_path = staged.write_arrays(arrays)
        checks = self_check(weights_path)
        if reference:
            checks += reference_check(weights_path, reference)
        passed = all(c["passed"] for c in checks)
        report = {**head, "passed": passed, **body, "checks": checks}
        os.makedirs(out_dir, exist_ok=True)
        if passed:
            lm_data.write_vocab_file({name: i for i, name in enumerate(names)}, staged.vocab_path)
            # a checkpoint of the converted model (float32 variables, as every checkpoint of this toolkit)
            Checkpointer(staging, staged.load()).save(0)
            staged.write_text(IMPORT_CONFIG, config(final.vocab_path))
            for name in os.listdir(staging):
                os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
        final.write_text(IMPORT_REPORT, json.dumps(report, indent=1) + "\n")
        return report, passed
    finally:
        shutil.rmtree(staging, ignore_errors=True)
