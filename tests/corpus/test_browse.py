"""Corpus browse pages: access by role, per-language statistics, filters, pagination, escaping."""
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.corpus.browse_data import IMG_PAYLOAD, PASSWORD, SCRIPT_PAYLOAD, make_dataset, make_user
from toxplatform.corpus.models import Dataset, Prompt, PromptLabel

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    return make_dataset()


@pytest.fixture
def researcher_client(client):
    make_user("res", "Researcher")
    client.login(username="res", password=PASSWORD)
    return client


def page_urls(dataset):
    prompt = dataset.prompts.get(external_id="en-1")
    return [
        reverse("corpus:dataset-list"),
        reverse("corpus:dataset-detail", args=[dataset.slug]),
        reverse("corpus:prompt-list", args=[dataset.slug]),
        reverse("corpus:prompt-detail", args=[dataset.slug, prompt.pk]),
    ]


def listed_ids(response) -> list[str]:
    return [prompt.external_id for prompt in response.context["page"].object_list]


# --- access -------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client, dataset):
    for url in page_urls(dataset):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


def test_an_annotator_gets_403_on_corpus_pages(client, dataset):
    make_user("ann", "Annotator")
    client.login(username="ann", password=PASSWORD)
    for url in page_urls(dataset):
        response = client.get(url)
        assert response.status_code == 403
        assert b"Researcher" in response.content  # the page says which role is missing


@pytest.mark.parametrize(
    ("roles", "flags"),
    [(("Researcher",), {}), ((), {"is_staff": True}), ((), {"is_superuser": True})],
    ids=["researcher", "staff", "superuser"],
)
def test_researchers_and_staff_see_corpus_pages(client, dataset, roles, flags):
    make_user("someone", *roles, **flags)
    client.login(username="someone", password=PASSWORD)
    for url in page_urls(dataset):
        assert client.get(url).status_code == 200, url


def test_navigation_follows_the_role(client, dataset):
    make_user("ann", "Annotator")
    client.login(username="ann", password=PASSWORD)
    profile = client.get(reverse("accounts:profile")).content.decode()
    assert reverse("corpus:dataset-list") not in profile
    assert reverse("admin:index") not in profile

    make_user("boss", "Researcher", is_staff=True)
    client.login(username="boss", password=PASSWORD)
    page = client.get(reverse("corpus:dataset-list")).content.decode()
    assert f'href="{reverse("corpus:dataset-list")}" aria-current="page"' in page
    assert f'href="{reverse("admin:index")}"' in page


# --- dataset list and statistics -----------------------------------------------------


def test_dataset_list_counts_prompts_and_languages(researcher_client, dataset):
    Dataset.objects.create(slug="empty", name="Empty set", format="jsonl")
    response = researcher_client.get(reverse("corpus:dataset-list"))
    counts = {d.slug: (d.num_prompts, d.num_languages) for d in response.context["datasets"]}
    assert counts == {"mini": (6, 3), "empty": (0, 0)}
    assert reverse("corpus:dataset-detail", args=["mini"]) in response.content.decode()


def test_dataset_detail_counts_per_language_and_category(researcher_client, dataset):
    response = researcher_client.get(reverse("corpus:dataset-detail", args=[dataset.slug]))
    stats = response.context["stats"]
    by_language = {
        row.language.code: (row.prompts, row.toxic, row.non_toxic, row.culturally_specific, row.high_by_category)
        for row in stats.languages
    }
    # At or above the midpoint: toxicity >= 3 of 1-5, insult >= 2 of 1-3.
    assert by_language == {
        "en": (3, 1, 1, 1, {"toxicity": 2, "insult": 1}),
        "ar": (2, 1, 1, 0, {"toxicity": 1, "insult": 1}),
        "de": (1, 0, 1, 1, {"toxicity": 0}),
    }
    assert (stats.totals.prompts, stats.totals.toxic, stats.totals.culturally_specific) == (6, 2, 2)

    categories = {row.category.slug: row for row in stats.categories}
    assert set(categories) == {"toxicity", "insult"}
    toxicity = categories["toxicity"]
    assert (toxicity.labelled_prompts, toxicity.high_prompts, toxicity.label_count) == (6, 3, 7)
    # Mean on 1-5 of the six human labels plus Perspective's 0.2 (0-1), mapped to 1.8.
    assert toxicity.mean_label == pytest.approx((1 + 4 + 3 + 1.33 + 5 + 2 + 1.8) / 7)
    insult = categories["insult"]
    assert (insult.labelled_prompts, insult.high_prompts, insult.mean_label) == (3, 2, pytest.approx(2.0))

    html = response.content.decode()
    assert "Culturally specific" in html
    # A category cell links to exactly the prompts it counts.
    link = reverse("corpus:prompt-list", args=[dataset.slug]) + "?language=en&amp;category=toxicity&amp;min_value=3"
    assert f'<a href="{link}">2</a>' in html


def test_statistics_take_a_fixed_number_of_queries(researcher_client, dataset):
    url = reverse("corpus:dataset-detail", args=[dataset.slug])
    with CaptureQueriesContext(connection) as small:
        researcher_client.get(url)
    for index in range(30):
        prompt = Prompt.objects.create(dataset=dataset, language_id="fr", external_id=f"fr-{index}", text="Bonjour")
        PromptLabel.objects.create(
            prompt=prompt, category_id="violence", value=3, source="human", scale_min=1, scale_max=3
        )
    with CaptureQueriesContext(connection) as large:
        researcher_client.get(url)
    assert len(large) == len(small)


# --- prompt list: filters --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["ar-1", "ar-2", "de-1", "en-1", "en-2", "en-3"]),
        ("language=ar", ["ar-1", "ar-2"]),
        ("category=insult&min_value=2", ["ar-2", "en-2"]),
        ("category=toxicity&min_value=3", ["ar-2", "en-2", "en-3"]),
        # 1.5 on 1-5 is 0.125 of the scale: Perspective's 0.2 on 0-1 counts, Arabic's 1.33 does not.
        ("category=toxicity&min_value=1.5", ["de-1", "en-1", "en-2", "en-3", "ar-2"]),
        ("category=insult", ["ar-2", "en-1", "en-2"]),
        ("q=ALERT", ["en-2", "en-3"]),
        ("toxic=toxic", ["ar-2", "en-2"]),
        ("toxic=non-toxic", ["ar-1", "de-1", "en-1"]),
        ("cultural=yes", ["de-1", "en-3"]),
        ("cultural=no", ["ar-1", "ar-2", "en-1", "en-2"]),
        ("group=g1", ["ar-1", "de-1", "en-1"]),
        ("language=en&toxic=toxic", ["en-2"]),
        ("language=de&category=toxicity&min_value=3", []),
    ],
)
def test_prompt_filters_select_exactly_the_matching_prompts(researcher_client, dataset, query, expected):
    response = researcher_client.get(reverse("corpus:prompt-list", args=[dataset.slug]) + "?" + query)
    assert response.status_code == 200
    assert sorted(listed_ids(response)) == sorted(expected)
    if not expected:
        assert "No prompts match these filters." in response.content.decode()


def test_prompts_with_several_matching_labels_are_listed_once(researcher_client, dataset):
    prompt = dataset.prompts.get(external_id="en-2")
    PromptLabel.objects.create(prompt=prompt, category_id="toxicity", value=0.9, source="perspective", scale_max=1)
    url = reverse("corpus:prompt-list", args=[dataset.slug])
    response = researcher_client.get(url + "?category=toxicity&min_value=3")
    assert sorted(listed_ids(response)) == ["ar-2", "en-2", "en-3"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("language=xx", "“xx” is not a language of this dataset."),
        ("language=fr", "“fr” is not a language of this dataset."),
        ("category=nope", "“nope” is not a harm category."),
        ("category=toxicity&min_value=abc", "The minimum label must be a number."),
        ("category=toxicity&min_value=nan", "The minimum label must be a number."),
        ("category=toxicity&min_value=9", "Toxicity labels go from 1 to 5; 9 is outside that scale."),
        ("min_value=2", "Choose a harm category for the minimum label."),
        ("toxic=maybe", "Select a valid choice. maybe is not one of the available choices."),
    ],
)
def test_a_bad_filter_value_shows_an_error_not_a_crash(researcher_client, dataset, query, message):
    response = researcher_client.get(reverse("corpus:prompt-list", args=[dataset.slug]) + "?" + query)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html
    assert message in html
    assert response.context["page"] is None  # no rows under a filter that was not applied


def test_a_bad_page_number_falls_back_to_a_page(researcher_client, dataset):
    url = reverse("corpus:prompt-list", args=[dataset.slug])
    assert researcher_client.get(url + "?page=abc").context["page"].number == 1
    assert researcher_client.get(url + "?page=999").context["page"].number == 1  # the last page


def test_pagination_keeps_the_filters(researcher_client):
    dataset = Dataset.objects.create(slug="big", name="Big", format="jsonl")
    Prompt.objects.bulk_create(
        [Prompt(dataset=dataset, language_id="en", external_id=f"e{i:03}", text=f"needle {i}") for i in range(120)]
        + [Prompt(dataset=dataset, language_id="de", external_id=f"d{i:03}", text=f"needle {i}") for i in range(10)]
        + [Prompt(dataset=dataset, language_id="en", external_id=f"h{i:03}", text="hay") for i in range(10)]
    )
    url = reverse("corpus:prompt-list", args=[dataset.slug])
    response = researcher_client.get(url + "?language=en&q=needle")
    page = response.context["page"]
    assert (page.paginator.count, page.paginator.num_pages, len(page.object_list)) == (120, 3, 50)

    hrefs = re.findall(r'href="(\?[^"]*)"', response.content.decode())
    next_link = [h for h in hrefs if "page=2" in h][0].replace("&amp;", "&")
    assert parse_qs(urlsplit(next_link).query) == {"language": ["en"], "q": ["needle"], "page": ["2"]}
    last_link = [h for h in hrefs if "page=3" in h][0].replace("&amp;", "&")

    last = researcher_client.get(url + last_link)
    assert last.context["page"].number == 3
    assert len(last.context["page"].object_list) == 20
    assert all(p.language_id == "en" and "needle" in p.text for p in last.context["page"].object_list)


def test_prompt_list_takes_a_fixed_number_of_queries(researcher_client, dataset):
    url = reverse("corpus:prompt-list", args=[dataset.slug])
    with CaptureQueriesContext(connection) as small:
        researcher_client.get(url)
    for index in range(40):
        prompt = Prompt.objects.create(dataset=dataset, language_id="he", external_id=f"he-{index}", text="שלום")
        PromptLabel.objects.create(prompt=prompt, category_id="bias", value=2, source="human", scale_min=1, scale_max=3)
    with CaptureQueriesContext(connection) as large:
        response = researcher_client.get(url)
    assert len(response.context["page"].object_list) == 46
    assert len(large) == len(small)


# --- escaping and direction -------------------------------------------------------------


def assert_payloads_escaped(html: str):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert SCRIPT_PAYLOAD not in html
    assert IMG_PAYLOAD not in html
    assert "<img" not in html


def test_prompt_text_is_escaped_in_the_list(researcher_client, dataset):
    assert_payloads_escaped(researcher_client.get(reverse("corpus:prompt-list", args=[dataset.slug])).content.decode())


def test_prompt_text_is_escaped_on_the_detail_page_and_in_translations(researcher_client, dataset):
    # en-2 is the script payload itself; the img payload is put in its group as a "translation".
    Prompt.objects.filter(external_id="en-3").update(group_id="g2")
    prompt = dataset.prompts.get(external_id="en-2")
    html = researcher_client.get(reverse("corpus:prompt-detail", args=[dataset.slug, prompt.pk])).content.decode()
    assert_payloads_escaped(html)


def test_hostile_metadata_and_filter_values_are_escaped(researcher_client, dataset):
    prompt = dataset.prompts.get(external_id="en-1")
    prompt.metadata = {"note": SCRIPT_PAYLOAD}
    prompt.save()
    html = researcher_client.get(reverse("corpus:prompt-detail", args=[dataset.slug, prompt.pk])).content.decode()
    assert "&lt;script&gt;" in html and SCRIPT_PAYLOAD not in html

    url = reverse("corpus:prompt-list", args=[dataset.slug])
    html = researcher_client.get(url, {"q": '"><script>alert(2)</script>', "group": "<b>"}).content.decode()
    assert "<script>alert(2)" not in html
    assert "&lt;b&gt;" in html


def test_arabic_prompts_are_marked_right_to_left(researcher_client, dataset):
    html = researcher_client.get(reverse("corpus:prompt-list", args=[dataset.slug]) + "?group=g1").content.decode()
    assert '<div class="prompt-text" lang="ar" dir="rtl">أنت شخص رائع</div>' in html
    assert '<div class="prompt-text" lang="en" dir="ltr">You are a wonderful person</div>' in html


# --- prompt detail ---------------------------------------------------------------------------


def test_prompt_detail_shows_labels_raters_and_other_languages(researcher_client, dataset):
    prompt = dataset.prompts.get(external_id="en-1")
    response = researcher_client.get(reverse("corpus:prompt-detail", args=[dataset.slug, prompt.pk]))
    html = response.content.decode()
    assert sorted(p.external_id for p in response.context["translations"]) == ["ar-1", "de-1"]
    assert "1.0, 1.0, 1.0" in html  # rater values
    assert "perspective" in html
    assert "&quot;source_file&quot;: &quot;RTP_LX_EN.json&quot;" in html  # metadata as JSON, escaped
    for other in ("ar-1", "de-1"):
        other_pk = dataset.prompts.get(external_id=other).pk
        assert reverse("corpus:prompt-detail", args=[dataset.slug, other_pk]) in html


def test_a_prompt_is_only_found_under_its_own_dataset(researcher_client, dataset):
    other = Dataset.objects.create(slug="other", name="Other", format="jsonl")
    prompt = dataset.prompts.get(external_id="en-1")
    assert researcher_client.get(reverse("corpus:prompt-detail", args=[other.slug, prompt.pk])).status_code == 404
    assert researcher_client.get(reverse("corpus:dataset-detail", args=["missing"])).status_code == 404


def test_the_dataset_path_is_for_admins_and_the_dataset_id_stands_apart(researcher_client, dataset):
    dataset.source = "/srv/secret/rtp-lx"
    dataset.save()
    detail = researcher_client.get(reverse("corpus:dataset-detail", args=[dataset.slug])).content.decode()
    assert "/srv/secret/rtp-lx" not in detail and "shown to admins" in detail
    prompt = dataset.prompts.first()
    page = researcher_client.get(reverse("corpus:prompt-detail", args=[dataset.slug, prompt.pk])).content.decode()
    assert f'<dt>Id in the dataset</dt><dd><code class="dataset-id">{prompt.external_id}</code>' in page
    assert "<dt>Database id</dt>" in page


def test_an_anonymous_visitors_first_page_says_what_the_platform_is(client):
    page = client.get(reverse("accounts:login")).content.decode()
    assert "ToxPlatform measures how toxic language models are in many languages" in page
    assert "ToxPlatform administration" in client.get("/admin/login/").content.decode()
