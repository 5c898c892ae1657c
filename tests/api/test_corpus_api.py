"""Corpus endpoints: exact results of every prompt filter, 400s for filters that name nothing."""
import pytest
from django.urls import reverse

from tests.api.conftest import XSS_TEXT, add_prompt
from toxplatform.corpus.models import Dataset, Prompt

PROMPTS = "/api/prompts/"


def keys(response):
    """(dataset, language, external id) of the listed prompts, in the order the API gives."""
    assert response.status_code == 200, response.content
    return keys_of(response.json())


def keys_of(page):
    return [(p["dataset"], p["language"], p["external_id"]) for p in page["results"]]


def test_api_root_lists_the_corpus_endpoints(token_client):
    response = token_client.get(reverse("api:api-root"))
    assert response.status_code == 200
    root = response.json()
    assert {"languages", "harm-categories", "datasets", "prompts"} <= set(root)
    assert root["prompts"] == "http://testserver/api/prompts/"


def test_languages_are_the_seeded_table_unpaginated(token_client):
    languages = token_client.get(reverse("api:language-list")).json()
    codes = [language["code"] for language in languages]
    assert {"ar", "he", "zh-Hans", "en"} <= set(codes)
    assert codes == sorted(codes)
    arabic = token_client.get(reverse("api:language-detail", args=["ar"])).json()
    assert arabic == {"code": "ar", "english_name": "Arabic", "native_name": "العربية", "script": "Arab",
                      "direction": "rtl"}
    assert token_client.get(reverse("api:language-detail", args=["zh-Hans"])).json()["script"] == "Hans"
    assert token_client.get(reverse("api:language-detail", args=["klingon"])).status_code == 404


def test_harm_categories_carry_their_scale(token_client):
    categories = token_client.get(reverse("api:harm-category-list")).json()
    assert [c["slug"] for c in categories][:2] == ["toxicity", "identity-attack"]
    toxicity = token_client.get(reverse("api:harm-category-detail", args=["toxicity"])).json()
    assert (toxicity["scale_min"], toxicity["scale_max"]) == (1, 5)


def test_datasets_with_prompt_counts(token_client, corpus):
    datasets = token_client.get(reverse("api:dataset-list")).json()
    assert datasets["count"] == 2
    assert [(d["slug"], d["prompt_count"], d["language_count"]) for d in datasets["results"]] == [
        ("ptp-mini", 2, 2), ("rtp-lx-mini", 5, 4),
    ]


def test_dataset_detail_counts_prompts_per_language_and_labels(token_client, corpus):
    detail = token_client.get(reverse("api:dataset-detail", args=["rtp-lx-mini"])).json()
    assert detail["prompt_count"] == 5
    assert detail["license"] == "CDLA"
    counts = ["prompt_count", "toxic_count", "non_toxic_count", "culturally_specific_count"]
    assert [(row["language"], *(row[count] for count in counts)) for row in detail["languages"]] == [
        ("ar", 1, 1, 0, 0),  # ordered by English name: Arabic, Chinese, English, Hebrew
        ("zh-Hans", 1, 0, 0, 0),
        ("en", 2, 1, 1, 0),
        ("he", 1, 0, 1, 1),
    ]
    assert detail["labels"] == [
        {"category": "toxicity", "source": "human", "scale": {"min": 1.0, "max": 5.0}, "label_count": 4},
        {"category": "toxicity", "source": "perspective", "scale": {"min": 0.0, "max": 1.0}, "label_count": 1},
        {"category": "insult", "source": "human", "scale": {"min": 1.0, "max": 3.0}, "label_count": 1},
    ]
    assert token_client.get(reverse("api:dataset-detail", args=["nope"])).status_code == 404


def test_a_prompt_carries_its_labels(token_client, corpus):
    prompt = Prompt.objects.get(dataset__slug="rtp-lx-mini", language="en", external_id="1")
    data = token_client.get(reverse("api:prompt-detail", args=[prompt.pk])).json()
    assert data == {
        "id": prompt.pk, "dataset": "rtp-lx-mini", "language": "en", "external_id": "1", "group_id": "g1",
        "text": "You are an idiot and", "culturally_specific": False, "is_toxic": True, "metadata": {},
        "labels": [
            {"category": "toxicity", "value": 4.33, "rater_values": [4, 4, 5], "num_raters": 3, "source": "human",
             "scale": {"min": 1.0, "max": 5.0}},
            {"category": "toxicity", "value": 0.95, "rater_values": [], "num_raters": 0, "source": "perspective",
             "scale": {"min": 0.0, "max": 1.0}},
            {"category": "insult", "value": 3.0, "rater_values": [3, 3, 3], "num_raters": 3, "source": "human",
             "scale": {"min": 1.0, "max": 3.0}},
        ],
    }


# Keys of the fixture's prompts. The API lists prompts in the model's order: dataset (in
# import order: RTP-LX mini was created first), language, then id.
LX_AR = ("rtp-lx-mini", "ar", "1")
LX_EN1 = ("rtp-lx-mini", "en", "1")
LX_EN2 = ("rtp-lx-mini", "en", "2")
LX_HE = ("rtp-lx-mini", "he", "1")
LX_ZH = ("rtp-lx-mini", "zh-Hans", "2")
PTP_DE = ("ptp-mini", "de", "p2")
PTP_EN = ("ptp-mini", "en", "p1")
ALL = [LX_AR, LX_EN1, LX_EN2, LX_HE, LX_ZH, PTP_DE, PTP_EN]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ALL),
        ("?dataset=ptp-mini", [PTP_DE, PTP_EN]),
        ("?language=en", [PTP_EN, LX_EN1, LX_EN2]),
        ("?language=ar,he", [LX_AR, LX_HE]),
        ("?language=ar&language=he", [LX_AR, LX_HE]),
        ("?language=zh-hans", [LX_ZH]),  # BCP-47 tags are case-insensitive
        ("?language= ar , ar ", [LX_AR]),
        ("?category=insult", [LX_EN1]),
        ("?category=toxicity", [PTP_DE, PTP_EN, LX_AR, LX_EN1, LX_EN2, LX_HE]),
        # min_label is on the category's scale (toxicity: 1-5); Perspective labels (0-1) are
        # mapped onto it: 3.5 of 1-5 is 0.625 of 0-1. en/1 passes on two labels: listed once.
        ("?category=toxicity&min_label=3.5", [LX_AR, LX_EN1, PTP_EN, PTP_DE]),
        ("?category=toxicity&min_label=1", [LX_AR, LX_EN1, LX_EN2, LX_HE, PTP_EN, PTP_DE]),
        ("?category=toxicity&min_label=3.67", [LX_AR, LX_EN1, PTP_EN, PTP_DE]),  # >= is inclusive
        ("?category=toxicity&min_label=3.68", [LX_EN1, PTP_EN, PTP_DE]),
        ("?category=toxicity&min_label=3.5&label_source=human", [LX_AR, LX_EN1]),
        ("?category=toxicity&min_label=4.5&label_source=perspective", [LX_EN1, PTP_DE]),  # 0.875 of 0-1
        ("?category=toxicity&label_source=perspective", [LX_EN1, PTP_EN, PTP_DE]),
        ("?category=toxicity&min_label=2&dataset=rtp-lx-mini", [LX_AR, LX_EN1]),
        ("?category=insult&min_label=3", [LX_EN1]),
        ("?category=identity-attack", []),  # a real category nobody labelled: a real empty answer
        ("?toxic=true", [PTP_DE, LX_AR, LX_EN1]),
        ("?toxic=false", [PTP_EN, LX_EN2, LX_HE]),
        ("?culturally_specific=true", [LX_HE]),
        ("?culturally_specific=false&dataset=rtp-lx-mini", [LX_AR, LX_EN1, LX_EN2, LX_ZH]),
        ("?group=g1", [LX_AR, LX_EN1, LX_HE]),
        ("?group=g9", []),  # a group id is free text: no match is a real empty answer
        ("?q=IDIOT", [LX_EN1]),
        ("?q=<script>", [LX_EN2]),
        ("?q=天气", [LX_ZH]),
        ("?dataset=rtp-lx-mini&language=en&toxic=false", [LX_EN2]),
    ],
)
def test_prompt_filters(token_client, corpus, query, expected):
    assert keys(token_client.get(PROMPTS + query)) == sorted(expected, key=ALL.index)


@pytest.mark.parametrize(
    "query, message",
    [
        ("?language=xx", "Unknown language: xx"),
        ("?language=en,klingon", "Unknown language: klingon"),
        ("?dataset=nope", "Unknown dataset 'nope'"),
        ("?category=rudeness", "Unknown harm category 'rudeness'"),
        ("?category=toxicity&min_label=abc", "min_label must be a number, not 'abc'"),
        ("?category=toxicity&min_label=nan", "min_label must be a number, not 'nan'"),
        ("?category=toxicity&min_label=0.5", "min_label 0.5 is outside the toxicity scale (1 to 5)"),
        ("?category=insult&min_label=4", "min_label 4 is outside the insult scale (1 to 3)"),
        ("?min_label=3", "min_label and label_source need a category"),
        ("?category=toxicity&label_source=oracle", "No gold labels come from source 'oracle'"),
        ("?toxic=maybe", "toxic must be true or false, not 'maybe'"),
        ("?culturally_specific=2", "culturally_specific must be true or false, not '2'"),
        ("?langauge=en", "Unknown filter parameter: langauge"),
        ("?dataset=ptp-mini&dataset=rtp-lx-mini", "Filter 'dataset' is given more than once"),
    ],
)
def test_a_filter_that_names_nothing_is_a_400_not_an_empty_list(token_client, corpus, query, message):
    response = token_client.get(PROMPTS + query)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["message"] == message


def test_pagination(token_client, corpus):
    first = token_client.get(PROMPTS + "?page_size=3").json()
    assert first["count"] == 7
    assert keys_of(first) == ALL[:3]
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/prompts/?page=2&page_size=3"
    last = token_client.get(PROMPTS + "?page_size=3&page=3").json()
    assert keys_of(last) == ALL[6:]
    assert last["next"] is None
    assert token_client.get(PROMPTS + "?page_size=3&page=4").status_code == 404
    # Filters survive into the next-page link.
    filtered = token_client.get(PROMPTS + "?language=en&page_size=1").json()
    assert filtered["count"] == 3
    assert "language=en" in filtered["next"]


def test_default_page_is_50_and_page_size_is_capped(token_client, corpus):
    dataset = Dataset.objects.create(slug="big", name="big", format="jsonl")
    Prompt.objects.bulk_create(
        Prompt(dataset=dataset, language_id="en", external_id=str(i), text=f"prompt {i}") for i in range(520)
    )
    assert len(token_client.get(PROMPTS + "?dataset=big").json()["results"]) == 50
    assert len(token_client.get(PROMPTS + "?dataset=big&page_size=10000").json()["results"]) == 500


def test_prompt_list_makes_a_bounded_number_of_queries(token_client, corpus, django_assert_max_num_queries):
    dataset = Dataset.objects.create(slug="many", name="many", format="jsonl")
    for i in range(40):
        add_prompt(dataset, "en" if i % 2 else "fr", str(i), f"prompt {i}", toxic=bool(i % 3), labels=[
            ("toxicity", 1 + i % 5, [1, 2, 3], "human", (1, 5)),
            ("insult", 1 + i % 3, [1, 2, 3], "human", (1, 3)),
            ("bias", 1.0, [1, 1, 1], "human", (1, 3)),
        ])
    # token, role, 3 filter look-ups (dataset, languages, category), count, page, labels prefetch
    with django_assert_max_num_queries(8):
        response = token_client.get(PROMPTS + "?dataset=many&language=en,fr&category=toxicity&min_label=2")
    data = response.json()
    assert data["count"] == 32
    assert all(len(p["labels"]) == 3 for p in data["results"])
    with django_assert_max_num_queries(5):
        assert len(token_client.get(PROMPTS + "?page_size=100").json()["results"]) == 47


def test_dataset_list_makes_a_bounded_number_of_queries(token_client, corpus, django_assert_max_num_queries):
    for i in range(20):
        Dataset.objects.create(slug=f"d{i}", name=f"d{i}", format="jsonl")
    with django_assert_max_num_queries(4):  # token, role, count, page
        assert token_client.get(reverse("api:dataset-list")).json()["count"] == 22


def test_hostile_text_is_returned_verbatim_as_json_data(token_client, corpus):
    response = token_client.get(PROMPTS + "?group=g2&language=en")
    assert response["Content-Type"] == "application/json"
    assert response.json()["results"][0]["text"] == XSS_TEXT


def test_hostile_text_is_escaped_in_the_browsable_api(token_client, corpus):
    response = token_client.get(PROMPTS + "?group=g2&language=en", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "alert(" in html  # the text is on the page...
    assert "<script>alert(" not in html and "<img src=x" not in html  # ...as text, not markup
