from django.db import migrations


def seed(apps, schema_editor):
    from toxplatform.corpus.reference import HARM_CATEGORIES, LANGUAGES

    Language = apps.get_model("corpus", "Language")
    HarmCategory = apps.get_model("corpus", "HarmCategory")
    for code, english, native, script, direction in LANGUAGES:
        Language.objects.update_or_create(
            code=code,
            defaults={"english_name": english, "native_name": native, "script": script, "direction": direction},
        )
    for slug, name, lo, hi, description, position in HARM_CATEGORIES:
        HarmCategory.objects.update_or_create(
            slug=slug,
            defaults={"name": name, "scale_min": lo, "scale_max": hi, "description": description, "position": position},
        )


class Migration(migrations.Migration):
    dependencies = [("corpus", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
