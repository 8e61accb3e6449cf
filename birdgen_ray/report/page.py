"""The report's HTML: one self-contained page (inline CSS, no scripts, no network) with relative links
to its PNGs and WAVs, so it works opened as a file and served over HTTP alike.
"""

from __future__ import annotations

import math

import jinja2

# Above this many clips the players load nothing until pressed: hundreds of eager players cost
# bandwidth, and browsers cap how many media players one page may hold.
EAGER_AUDIO_LIMIT = 100

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>birdgen-ray report: {{ data.out }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1280px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }
h3 { margin-bottom: .3rem; } .sub { color: #666; font-size: .9rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; } td.n, th.n { text-align: right; }
nav a { margin-right: .8rem; } .classes a { display: inline-block; margin: 0 .6rem .2rem 0; font-size: .85rem; }
.note { background: #fff6dd; border-left: 4px solid #e0b000; padding: .4rem .8rem; }
.charts img { max-width: 100%; margin: .5rem 1rem .5rem 0; vertical-align: top; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1rem; }
.clip { border: 1px solid #ddd; border-radius: 6px; padding: .5rem; margin: 0; }
.clip img { width: 100%; height: auto; display: block; } .clip audio { width: 100%; margin: .3rem 0; }
.prompt { font-size: .85rem; margin: .2rem 0; } .clip table { width: 100%; font-size: .75rem; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #c62828; font-weight: 600; }
code { font-size: .8rem; word-break: break-all; }
</style>
</head>
<body>
<h1>birdgen-ray report</h1>
<p class="sub">Output <code>{{ data.out }}</code> &middot; {{ data.clips }} clips in {{ data.classes|length }} classes
&middot; model {{ data.model_ids|join(", ") }} &middot; made {{ made_at }}</p>
<nav><a href="#run">Run</a><a href="#balance">Class balance</a><a href="#quality">Quality</a><a href="#clips">Clips</a></nav>

<h2 id="run">Run</h2>
{% if data.status %}
<table><tr><th>planned</th><th>done</th><th>failed</th><th>pending</th><th>shards</th></tr>
<tr>{% for k in ["planned", "done", "failed", "pending", "shards"] %}<td class="n">{{ data.status[k] }}</td>{% endfor %}</tr></table>
{% else %}<p class="note">No plan.parquet in this output: planned and pending counts are unknown.</p>{% endif %}
{% if data.summary %}{% set s = data.summary %}
<table>
<tr><th>last run</th><td>{{ s.run_id }} ({{ s.status }}), finished {{ s.finished_at }}</td></tr>
<tr><th>throughput</th><td>{{ s.generated_this_run }} clips in {{ num(s.wall_seconds, 1) }} s wall = {{ num(s.clips_per_second, 2) }} clips/s</td></tr>
<tr><th>workers</th><td>{{ s.actors }} actors, {{ num(s.actor_seconds, 1) }} actor-seconds, {{ num(s.gpu_seconds, 1) }} GPU-seconds</td></tr>
<tr><th>written</th><td>{{ num((s.bytes_written or 0) / 1e6, 1) }} MB; shard retries {{ s.shard_retries }}, failed clips {{ s.failed_clips }}</td></tr>
<tr><th>generator</th><td>{{ s.settings.generator if s.settings else s.generator }} / {{ s.model_id }}</td></tr>
</table>
{% else %}<p class="note">No summary.json in this output: run throughput is unknown.</p>{% endif %}
{% if data.settings %}{% set g = data.settings %}
<p class="sub">Settings: scheduler {{ g.scheduler }}, {{ g.num_inference_steps }} steps, guidance {{ g.guidance_scale }},
{{ g.candidates_per_clip }} candidate(s) per clip, output {{ g.output_sample_rate }} Hz, peak {{ g.peak_dbfs }} dBFS.</p>{% endif %}
{% if images.stages %}<div class="charts"><img src="{{ images.stages }}" alt="time per stage"></div>{% endif %}

<h2 id="balance">Class balance</h2>
{% if not data.real_known %}<p class="note">Real counts unknown: the plan had no <code>real_count</code> column,
so this shows synthetic clips only (not a before/after comparison).</p>{% endif %}
<div class="charts"><img src="{{ images.balance }}" alt="class balance chart"></div>
<table>
<tr><th>label</th><th>name</th><th>taxon</th>{% if data.real_known %}<th class="n">real (before)</th>{% endif %}
<th class="n">synthetic passed</th><th class="n">synthetic failed</th>{% if data.real_known %}<th class="n">after</th>{% endif %}<th>rule</th></tr>
{% for c in data.classes %}<tr><td><a href="#{{ c.anchor }}">{{ c.label }}</a></td><td>{{ c.common_name }}</td><td>{{ c.taxon_class }}</td>
{% if data.real_known %}<td class="n">{{ c.real }}</td>{% endif %}<td class="n">{{ c.passed }}</td><td class="n">{{ c.failed }}</td>
{% if data.real_known %}<td class="n">{{ c.after }}</td>{% endif %}<td>{{ c.rule }}</td></tr>
{% endfor %}</table>

<h2 id="quality">Quality</h2>
<div class="charts"><img src="{{ images.metrics }}" alt="quality score distributions">
<img src="{{ images.verdicts }}" alt="quality gate verdicts"></div>
<table><tr><th>verdict</th><th class="n">clips</th></tr>
{% for name, count in verdicts %}<tr><td>{{ name }}</td><td class="n">{{ count }}</td></tr>{% endfor %}</table>
{% if data.thresholds %}<p class="sub">Gate: {% for k, v in data.thresholds|dictsort %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}
 (dashed lines in the histograms).</p>{% endif %}

<h2 id="clips">Clips</h2>
<p class="sub">Up to {{ per_class }} clips per class, the same sample each time for the same seed. Spectrograms show
the whole clip from left to right and frequency from 0 Hz at the bottom to half the sample rate at the top
(16 kHz for 32 kHz clips), over 80 dB; above the dashed line the model made nothing (its native bandwidth).</p>
<div class="classes">{% for c in data.classes %}<a href="#{{ c.anchor }}">{{ c.label }}</a>{% endfor %}</div>
{% for c in data.classes %}
<section id="{{ c.anchor }}">
<h3>{{ c.label }}{% if c.common_name %} &middot; {{ c.common_name }}{% endif %}{% if c.scientific_name %} <i>({{ c.scientific_name }})</i>{% endif %}</h3>
<p class="sub">{{ c.synthetic }} synthetic clips ({{ c.passed }} passed){% if c.real is not none %}, {{ c.real }} real{% endif %}</p>
<div class="grid">
{% for r in c.samples %}
<figure class="clip">
<img src="{{ clip_images[r.clip_id] }}" alt="spectrogram of {{ r.clip_id }}" width="480" height="220">
<audio controls preload="{{ preload }}" src="{{ clip_audio[r.clip_id] }}"></audio>
<p class="prompt">{{ r.prompt }}</p>
<table>
<tr><th>clip</th><td colspan="3"><code>{{ r.clip_id }}</code></td></tr>
<tr><th>verdict</th><td class="{{ 'pass' if r.verdict == 'pass' else 'fail' }}">{{ r.verdict }}</td><th>seed</th><td>{{ r.final_seed }}{% if r.final_seed != r.seed %} (plan {{ r.seed }}){% endif %}</td></tr>
<tr><th>CLAP</th><td>{{ num(r.clap_score, 3) }}</td><th>attempts</th><td>{{ r.attempts }}</td></tr>
<tr><th title="model output before normalisation">raw peak</th><td>{{ num(r.peak_dbfs, 1) }} dBFS</td><th title="model output before normalisation">raw RMS</th><td>{{ num(r.rms_dbfs, 1) }} dBFS</td></tr>
<tr><th>silence</th><td>{{ num(r.silence_fraction, 3) }}</td><th>clipping</th><td>{{ num(r.clipping_fraction, 4) }}</td></tr>
</table>
</figure>
{% endfor %}
</div>
</section>
{% endfor %}
</body>
</html>
"""


def num(value, digits: int = 2) -> str:
    """A number for the page; missing or non-finite values show as a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


# Lenient about missing keys: an older summary.json without a field still renders.
_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.globals["num"] = num
_PAGE = _ENV.from_string(TEMPLATE)


def render_page(data, images: dict, clip_images: dict, clip_audio: dict, per_class: int, made_at: str) -> str:
    """The HTML text. `images` maps chart names to relative PNG paths; `clip_*` map clip ids to theirs."""
    sampled = sum(len(c.samples) for c in data.classes)
    verdicts = sorted(data.verdicts.items(), key=lambda item: (item[0] != "pass", item[0]))
    return _PAGE.render(
        data=data,
        images=images,
        clip_images=clip_images,
        clip_audio=clip_audio,
        per_class=per_class,
        made_at=made_at,
        verdicts=verdicts,
        preload="metadata" if sampled <= EAGER_AUDIO_LIMIT else "none",
    )
