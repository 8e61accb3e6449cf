"""Prompt templates: shipped defaults, variety, call types by real frequency, user files, errors."""

from __future__ import annotations

from collections import Counter

import pytest

from birdgen_ray.plan.metadata import ClassStats
from birdgen_ray.plan.prompts import TemplateError, clip_prompt, load_templates, sound_for

SOUND_WORDS = {
    "Aves": ("bird", "owl", "woodpecker"),
    "Amphibia": ("frog",),
    "Insecta": ("insect",),
    "Mammalia": ("animal", "mammal", "bat"),
    "Reptilia": ("reptile",),
}
# Groups narrower than a class: naming one in a generic sound phrase would describe another animal
# than the label (a katydid's clip prompted as "cicada singing").
OTHER_GROUPS = ("cicada", "katydid", "cricket", "toad", "monkey", "gecko", "lizard")


def wren(**kw) -> ClassStats:
    values = dict(
        label="eurwre",
        real_count=12,
        common_name="Eurasian Wren",
        scientific_name="Troglodytes troglodytes",
        taxon_class="Aves",
        call_types=Counter({"song": 9, "call": 3}),
    )
    values.update(kw)
    return ClassStats(**values)


@pytest.mark.parametrize("taxon", sorted(SOUND_WORDS))
def test_shipped_templates_pair_a_general_sound_word_with_the_species_name(taxon):
    templates = load_templates()
    stats = wren(taxon_class=taxon, call_types=Counter())
    prompts = [clip_prompt(stats, k, 0, templates).prompt for k in range(60)]
    for prompt in prompts:
        assert any(word in prompt.lower() for word in SOUND_WORDS[taxon]), prompt
        assert not any(group in prompt.lower() for group in OTHER_GROUPS), prompt
        assert "Eurasian Wren" in prompt or "Troglodytes troglodytes" in prompt, prompt
        assert "{" not in prompt and "  " not in prompt
    assert len(set(prompts)) >= 40  # a class's prompts are not all the same


def test_no_shipped_sound_phrase_names_a_narrower_group_than_its_class():
    templates = load_templates()
    for taxon, section in [("default", templates.default), *templates.classes.items()]:
        for call_type, phrases in section.sounds.items():
            for phrase in phrases:
                assert not any(group in phrase.lower() for group in OTHER_GROUPS), (taxon, call_type, phrase)


def test_every_row_gets_the_negative_prompt_and_a_seed_in_range():
    templates = load_templates()
    clips = [clip_prompt(wren(), k, 7, templates) for k in range(200)]
    assert {c.negative_prompt for c in clips} == {templates.default.negative_prompt}
    assert "music" in clips[0].negative_prompt.lower()
    seeds = [c.seed for c in clips]
    assert all(0 <= s < 2**31 for s in seeds) and len(set(seeds)) == 200


def test_call_type_is_drawn_from_the_class_types_by_real_frequency():
    templates = load_templates()
    stats = wren(call_types=Counter({"song": 90, "call": 10, "male": 40, "adult": 40}))
    drawn = Counter(clip_prompt(stats, k, 0, templates).call_type for k in range(2000))
    assert set(drawn) == {"song", "call"}  # "male"/"adult" describe the bird, not the sound
    assert 0.86 < drawn["song"] / 2000 < 0.94


def test_class_without_types_uses_its_taxon_defaults():
    templates = load_templates()
    frog = wren(taxon_class="Amphibia", call_types=Counter({"uncertain": 3}))
    drawn = {clip_prompt(frog, k, 0, templates).call_type for k in range(200)}
    assert drawn == set(templates.for_class("Amphibia").call_types)


def test_empty_scientific_name_skips_templates_that_need_it():
    templates = load_templates()
    stats = wren(scientific_name="")
    prompts = [clip_prompt(stats, k, 0, templates).prompt for k in range(100)]
    assert all("()" not in p and ", ," not in p for p in prompts)
    assert all("Eurasian Wren" in p for p in prompts)


def test_missing_common_name_falls_back_to_scientific_name_then_label():
    templates = load_templates()
    assert "Troglodytes" in clip_prompt(wren(common_name=""), 0, 0, templates).prompt
    bare = wren(common_name="", scientific_name="")
    assert all("eurwre" in clip_prompt(bare, k, 0, templates).prompt for k in range(20))


def test_same_key_same_prompt_and_other_plan_seed_other_prompts():
    templates = load_templates()
    first = [clip_prompt(wren(), k, 0, templates) for k in range(30)]
    assert first == [clip_prompt(wren(), k, 0, templates) for k in range(30)]
    other = [clip_prompt(wren(), k, 1, templates) for k in range(30)]
    assert sum(a.prompt != b.prompt for a, b in zip(first, other)) > 15
    assert all(a.seed != b.seed for a, b in zip(first, other))


def test_sound_phrase_follows_the_call_type():
    sounds = load_templates().for_class("aves").sounds  # class names match case-insensitively
    assert sound_for("song", sounds) == sounds["song"]
    assert sound_for("contact call", sounds) == sounds["call"]
    assert sound_for("alarm call", sounds) == sounds["alarm"]  # longest matching key
    assert sound_for("callsong", sounds) == sounds["default"]  # whole words only


def test_user_toml_file_overrides_defaults_per_taxon_class(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text(
        'negative_prompt = "noise"\n'
        "[default]\n"
        'templates = ["{sound} by {common_name}, {habitat}, {style}"]\n'
        'call_types = ["call"]\nhabitats = ["in fog"]\nstyles = ["mono"]\n'
        '[default.sounds]\ndefault = ["generic animal"]\n'
        "[classes.aves]\n"
        'templates = ["{sound}: {common_name} {call_type}"]\nnegative_prompt = "wind"\n'
        '[classes.aves.sounds]\nsong = ["pretty bird song"]\n',
        encoding="utf-8",
    )
    templates = load_templates(path)
    bird = clip_prompt(wren(call_types=Counter({"song": 1})), 0, 0, templates)
    assert (bird.prompt, bird.negative_prompt) == ("Pretty bird song: Eurasian Wren song", "wind")
    frog = clip_prompt(wren(taxon_class="Amphibia"), 0, 0, templates)
    assert (frog.prompt, frog.negative_prompt) == ("Generic animal by Eurasian Wren, in fog, mono", "noise")


def test_user_yaml_file(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(
        "default:\n"
        "  templates: ['{sound} of {common_name} ({scientific_name})']\n"
        "  call_types: [call]\n  habitats: [x]\n  styles: [y]\n"
        "  sounds: {default: [chirp]}\n",
        encoding="utf-8",
    )
    assert clip_prompt(wren(), 3, 0, load_templates(path)).prompt == "Chirp of Eurasian Wren (Troglodytes troglodytes)"


VALID_DEFAULT = (
    '[default]\ntemplates = ["{sound} of {common_name}"]\ncall_types = ["call"]\n'
    'habitats = ["x"]\nstyles = ["y"]\nsounds = {default = ["chirp"]}\n'
)


@pytest.mark.parametrize(
    "body, expected",
    [
        (VALID_DEFAULT.replace("{common_name}", "{colour}"), "'default.templates[0]': unknown variable(s) ['colour']"),
        (VALID_DEFAULT.replace('["{sound} of {common_name}"]', "[]"), "'default.templates': must be a non-empty list"),
        (
            VALID_DEFAULT.replace('"{sound} of {common_name}"', '"{sound"'),
            "'default.templates[0]': not a valid template",
        ),
        (VALID_DEFAULT.replace("default = ", "song = "), "'default.sounds': must be a table with at least a 'default'"),
        (VALID_DEFAULT + '[classes.Aves]\nmood = "calm"\n', "'classes.Aves': unknown key(s) ['mood']"),
        (VALID_DEFAULT + '[classes.Aves]\nhabitats = ["ok", 3]\n', "'classes.Aves.habitats': must be a non-empty list"),
        ("ignore_call_types = 'male'\n" + VALID_DEFAULT, "'ignore_call_types': must be a list"),
        ("[default\n", "cannot parse"),
        ('[default]\ntemplates = ["x"]\n', "'default.call_types'"),  # a user file is complete on its own
    ],
)
def test_bad_template_file_names_file_and_key(tmp_path, body, expected):
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(TemplateError) as err:
        load_templates(path)
    assert "bad.toml" in str(err.value) and expected in str(err.value)


def test_missing_template_file(tmp_path):
    with pytest.raises(TemplateError, match="nope.toml"):
        load_templates(tmp_path / "nope.toml")
