"""Tests for fusion_utils.errors: the hierarchy and the message format."""

from __future__ import annotations

import pytest

from fusion_utils import errors


@pytest.mark.parametrize(
    "cls",
    [errors.DataError, errors.ScalogramError, errors.FeatureError, errors.ClassifierError,
     errors.MetricInputError, errors.RunFolderError],
)
def test_value_errors_are_project_and_value_errors(cls: type) -> None:
    assert issubclass(cls, errors.FusionError)
    assert issubclass(cls, ValueError)


def test_notebook_parameter_error_is_a_type_error() -> None:
    assert issubclass(errors.NotebookParameterError, errors.FusionError)
    assert issubclass(errors.NotebookParameterError, TypeError)
    assert issubclass(errors.NotebookParameterError, ValueError)


def test_describe_full_message() -> None:
    msg = errors.describe("t.csv", "not a number", "fix it", column="age", record=7)
    assert msg == "t.csv, column 'age', record 7: not a number; fix it"


def test_describe_without_where_or_remedy() -> None:
    assert errors.describe(None, "bad") == "bad"
    assert errors.describe("f", "bad") == "f: bad"
