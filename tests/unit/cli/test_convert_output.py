"""`autoscaler convert`'s YAML shows what the HCL held, and nothing that moves a terminal:
the characters `plan -o yaml` escapes are escaped here too, and read back the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoscaler.cli.main import main

# U+202E (right-to-left override) and U+2066 (left-to-right isolate) reorder what follows
# them on screen; U+0085 (NEL) is a line break to YAML; U+009B is a C1 CSI (`ESC [`).
QUERY = 'sum(queue_depth{queue="ba\u202etch\u0085\u2066x\u009b"})'
JOB = "we\u202eb\u2069"
HCL = """\
job "JOB" {
  group "api" {
    scaling {
      min = 1
      max = 5
      policy {
        check "queue" {
          source   = "prometheus"
          query    = "QUERY"
          strategy "target-value" { target = 10 }
        }
      }
    }
  }
}
"""
RAW = [chr(c) for c in (*range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def test_convert_escapes_the_bidi_and_c1_controls_of_a_query_and_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written raw: a review of the YAML read the query reordered, and the NEL in a quoted
    # query was read back as a space (another query than the HCL's).
    source = tmp_path / "jobs.nomad"
    query = QUERY.replace('"', '\\"')
    source.write_text(HCL.replace("JOB", JOB).replace("QUERY", query), encoding="utf-8")
    out = tmp_path / "jobs.yaml"
    assert main(["convert", str(source), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert [c for c in text if c in RAW] == []
    assert 'job: "we\\u202eb\\u2069"' in text
    assert '# Converted from job "we\\u202eb\\u2069" group "api"' in text
    (policy,) = yaml.safe_load_all(text)
    assert policy["target"]["job"] == JOB
    assert policy["checks"][0]["query"] == QUERY
    err = capsys.readouterr().err
    assert 'job "we\\u202eb\\u2069" group "api": not carried: ' in err
    assert [c for c in err if c in RAW] == []


def test_a_line_break_in_a_label_stays_in_its_comment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The comment ended at the line break, the rest of it was YAML: the policy was refused
    # as invalid YAML.
    source = tmp_path / "batch.hcl"
    policy = 'scaling "batch\\nqueue" {\n  min = 1\n  max = 5\n  policy {\n'
    check = '    check "q" {\n      source = "prometheus"\n      query = "sum(q)"\n'
    rest = '      strategy "target-value" { target = 10 }\n    }\n'
    target = '    target "aws-asg" { aws_asg_name = "batch" }\n  }\n}\n'
    source.write_text(policy + check + rest + target)
    assert main(["convert", str(source)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith('# Converted from scaling "batch\\nqueue" in ')
    assert yaml.safe_load(captured.out)["name"] == "batch-queue"
    assert 'scaling "batch\\nqueue": not carried: ' in captured.err
