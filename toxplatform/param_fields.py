"""A declared Param (toxplatform/params.py) as a form field, an API serializer field and a
command-line option: label, help, default and type come from the declaration; bounds are
shown (HTML min/max, help text) but checked only by the service, so every interface gives
the same message for the same out-of-range value.
"""
from __future__ import annotations

import argparse
import json

from django import forms
from rest_framework import serializers

from toxplatform.params import Param


def form_field(param: Param, **overrides) -> forms.Field:
    """A form field for a scalar Param (int, float, bool, str); no validators beyond the type."""
    options = {"label": param.title, "help_text": param.help_text(), "required": False,
               "initial": param.default, **overrides}
    attrs = {}
    if param.minimum is not None and not param.exclusive_minimum:
        attrs["min"] = param.minimum
    if param.maximum is not None and not param.exclusive_maximum:
        attrs["max"] = param.maximum
    if param.choices:
        return forms.ChoiceField(choices=[(choice, choice) for choice in param.choices], **options)
    if param.kind is int:
        return forms.IntegerField(widget=forms.NumberInput(attrs=attrs), **options)
    if param.kind is float:
        return forms.FloatField(widget=forms.NumberInput(attrs={**attrs, "step": "any"}), **options)
    if param.kind is bool:
        return forms.BooleanField(**options)
    if param.kind is str:
        return forms.CharField(strip=True, **options)
    raise TypeError(f"no form field for a {param.kind.__name__} parameter ({param.name})")


def serializer_field(param: Param) -> serializers.Field:
    """An API field: the declared type, optional (left out = the declared default)."""
    options = {"required": param.required, "help_text": param.help_text()}
    if param.optional:
        options["allow_null"] = True
    if param.kind is int:
        return serializers.IntegerField(**options)
    if param.kind is float:
        return serializers.FloatField(**options)
    if param.kind is bool:
        return serializers.BooleanField(**options)
    if param.kind is str:
        return serializers.CharField(allow_blank=not param.required, trim_whitespace=False, **options)
    if param.kind is dict:
        return serializers.DictField(**options)
    if param.item_kind is str:
        return serializers.ListField(child=serializers.CharField(), **options)
    return serializers.ListField(child=serializers.JSONField(), **options)


def add_argument(parser: argparse.ArgumentParser, param: Param, **overrides) -> None:
    """--name-with-dashes (or the declared flag) with the declared type; default None, so a
    value not given is not sent and the service's declared default applies."""
    options = {"dest": param.name, "default": None, "help": param.help_text(), **overrides}
    if param.kind in (int, float, str) and "action" not in options:
        options.setdefault("type", param.kind)
    elif param.kind is bool:
        options.setdefault("action", argparse.BooleanOptionalAction)
    elif param.kind is dict:
        options.setdefault("type", json_object(param.flag))
    elif param.kind is list and "action" not in options:
        options.setdefault("nargs", "+")
        if param.item_kind is str:
            options.setdefault("action", CommaSeparated)
    parser.add_argument(param.flag, **options)


class CommaSeparated(argparse.Action):
    """A list of names given as `en ar`, `en,ar` or both: `--languages en,ar de`."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [part.strip() for value in values for part in value.split(",") if part.strip()])


def json_object(flag: str):
    """An argparse type: a JSON object, or a clear error naming the flag."""

    def parse(text: str) -> dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"{flag}: not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{flag}: must be a JSON object")
        return value

    return parse
