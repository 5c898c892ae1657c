"""toxplatform.forms.ServiceForm: a service's refusal lands on the form the way the form's own
errors do (one rendering for the job, campaign, training, scorer-evaluation and import forms)."""
from django import forms

from toxplatform.errors import ApplicationError
from toxplatform.forms import ServiceForm


class PairForm(ServiceForm):
    name = forms.CharField()
    size = forms.IntegerField()
    SERVICE_FIELDS = {"n": "size"}


def refuse(error):
    def service(**kwargs):
        raise error
    return service


def submitted(error) -> PairForm:
    form = PairForm({"name": "a", "size": "3"})
    assert form.is_valid()
    assert form.submit(refuse(error)) is None
    return form


def test_the_service_gets_the_cleaned_data_and_its_result_is_returned():
    form = PairForm({"name": "a", "size": "3"})
    assert form.is_valid()
    assert form.submit(lambda **kwargs: kwargs, user="u") == {"name": "a", "size": 3, "user": "u"}
    assert not form.errors


def test_messages_that_name_a_field_go_on_that_field():
    form = submitted(ApplicationError("Invalid parameters", {"name": "must be shorter", "n": "must be 1 to 10"}))
    assert form.errors == {"name": ["must be shorter"], "size": ["must be 1 to 10"]}
    assert form.has_field_errors


def test_a_message_without_field_goes_on_the_form_with_its_other_details():
    form = submitted(ApplicationError("A pairwise campaign asks about one harm category.", {"size": 2}))
    assert form.non_field_errors() == ["A pairwise campaign asks about one harm category. (size=2)"]
    assert not form.has_field_errors
    form = submitted(ApplicationError("Unknown dataset 'x'"))
    assert form.non_field_errors() == ["Unknown dataset 'x'"]
    form = submitted(ApplicationError("Invalid parameters", {"name": "too long", "other": "unknown"}))
    assert form.errors["name"] == ["too long"]
    assert form.non_field_errors() == ["Invalid parameters (other=unknown)"]
