"""A tiny dataset for the browse-page tests, built with the ORM (shared with tests/browser)."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from toxplatform.corpus.models import Dataset, Prompt, PromptLabel

PASSWORD = "browse-test-password"
SCRIPT_PAYLOAD = "<script>alert(1)</script>"
IMG_PAYLOAD = "<img src=x onerror=alert(1)>"
ARABIC_TEXT = "أنت شخص رائع"

# external id -> (language, group, text, is_toxic, culturally specific, {category: value})
PROMPTS = {
    "en-1": ("en", "g1", "You are a wonderful person", False, False, {"toxicity": 1.0, "insult": 1.0}),
    "en-2": ("en", "g2", SCRIPT_PAYLOAD, True, False, {"toxicity": 4.0, "insult": 3.0}),
    "en-3": ("en", "g3", IMG_PAYLOAD, None, True, {"toxicity": 3.0}),
    "ar-1": ("ar", "g1", ARABIC_TEXT, False, False, {"toxicity": 1.33}),
    "ar-2": ("ar", "g2", "نص عربي مسيء", True, False, {"toxicity": 5.0, "insult": 2.0}),
    "de-1": ("de", "g1", "Du bist ein wunderbarer Mensch", False, True, {"toxicity": 2.0}),
}
SCALES = {"toxicity": (1.0, 5.0), "insult": (1.0, 3.0)}


def make_dataset(slug: str = "mini") -> Dataset:
    dataset = Dataset.objects.create(slug=slug, name="Mini RTP-LX", format="rtp-lx", version="0.3", license="MIT")
    for external_id, (language, group, text, toxic, cultural, labels) in PROMPTS.items():
        prompt = Prompt.objects.create(
            dataset=dataset,
            language_id=language,
            external_id=external_id,
            group_id=group,
            text=text,
            is_toxic=toxic,
            culturally_specific=cultural,
            metadata={"source_file": f"RTP_LX_{language.upper()}.json"},
        )
        for category, value in labels.items():
            low, high = SCALES[category]
            PromptLabel.objects.create(
                prompt=prompt,
                category_id=category,
                value=value,
                rater_values=[value, value, value],
                num_raters=3,
                source="human",
                scale_min=low,
                scale_max=high,
            )
    # A second source on another scale (Perspective, 0-1): 0.2 maps to 1.8 on toxicity's 1-5.
    PromptLabel.objects.create(
        prompt=dataset.prompts.get(external_id="en-1"),
        category_id="toxicity",
        value=0.2,
        source="perspective",
        scale_min=0.0,
        scale_max=1.0,
    )
    return dataset


def make_user(username: str, *roles: str, **flags):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **flags)
    for role in roles:
        # get_or_create: a transactional test may run after a flush removed the migration's groups.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user
