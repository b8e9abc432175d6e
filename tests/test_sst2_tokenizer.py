import random
from collections import Counter

from sst2_bilstm.tokenizer import KERAS_FILTERS, encode, fit_word_tokenizer


def keras_words(text):
    """Keras's text_to_word_sequence, as the oracle."""
    text = text.lower().translate(str.maketrans(KERAS_FILTERS, " " * len(KERAS_FILTERS)))
    return [word for word in text.split(" ") if word]


def keras_sequences(fit_texts, texts, num_words, max_length):
    """Keras's Tokenizer(num_words, oov_token) + pad_sequences(padding="post", truncating="post"), as the oracle."""
    counts = Counter()
    for text in fit_texts:
        counts.update(keras_words(text))
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    index = {word: i + 2 for i, (word, _) in enumerate(ranked)}
    rows = []
    for text in texts:
        ids = [index.get(word, 1) for word in keras_words(text)]
        ids = [i if i < num_words else 1 for i in ids][:max_length]
        rows.append(ids + [0] * (max_length - len(ids)))
    return rows


def test_ids_padding_truncation_and_oov():
    tokenizer = fit_word_tokenizer(["b a a", "c b a"], num_words=10, max_length=4)
    assert encode(tokenizer, ["a b c", "a unknown", "", "c c c c c c"]).tolist() == [
        [2, 3, 4, 0],  # most frequent first: a (3), b (2), c (1)
        [2, 1, 0, 0],  # out of vocabulary -> 1, padding at the end -> 0
        [0, 0, 0, 0],
        [4, 4, 4, 4],  # truncated at the end
    ]


def test_case_punctuation_and_apostrophes_follow_keras():
    tokenizer = fit_word_tokenizer(["it's Great,great!film-maker (really)\ttab"], num_words=20, max_length=8)
    vocab = tokenizer.get_vocab()
    assert {"it's", "great", "film", "maker", "really", "tab"} <= vocab.keys()
    assert vocab["great"] == 2 and "great," not in vocab and "(really)" not in vocab


def test_ties_keep_first_seen_order_and_the_vocabulary_is_capped():
    tokenizer = fit_word_tokenizer(["zeta alpha", "mid alpha zeta beta"], num_words=4, max_length=5)
    # zeta and alpha both appear twice: zeta was seen first. Only num_words - 2 words get their own id.
    assert tokenizer.get_vocab_size() == 4
    assert encode(tokenizer, ["alpha zeta mid beta"]).tolist() == [[3, 2, 1, 1, 0]]


def test_matches_keras_on_random_texts():
    rng = random.Random(0)
    words = [f"w{i}" for i in range(60)] + ["The", "the", "it's", "a-b", "x.y", "!!", "Q"]
    fit = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 15))) for _ in range(200)]
    # Texts that were not fitted on, half their words never seen: those are out of vocabulary in both.
    unseen = [f"new{i}" for i in range(20)]
    other = [" ".join(rng.choice(words + unseen) for _ in range(rng.randint(1, 15))) for _ in range(100)]
    tokenizer = fit_word_tokenizer(fit, num_words=30, max_length=12)
    texts = fit + other
    assert encode(tokenizer, texts).tolist() == keras_sequences(fit, texts, num_words=30, max_length=12)
    first_unseen = next(text.split()[0] for text in other if text.split()[0] in unseen)
    assert encode(tokenizer, [first_unseen]).tolist() == [[1] + [0] * 11]
