import math

from onefeed.search.keywords import idf_weights, keyword_query, words


def test_words_drop_stopwords_units_and_single_letters():
    assert words("The Red Shoe, 2 oz (for kids) x") == ["red", "shoe", "kids"]
    assert words(None) == []


def test_idf_and_keyword_query_keep_the_rarest_words_in_text_order():
    docs = [["red", "shoe", "classic"], ["red", "shoe", "sport"], ["blue", "boot"]]
    idf = idf_weights(docs)
    assert idf["classic"] == math.log(4 / 2) + 1 and idf["red"] == math.log(4 / 3) + 1
    assert keyword_query(docs[0], idf, 2) == "red classic"  # classic, then red (first tie)
    assert keyword_query(docs[0] + ["classic"], idf, 5) == "red shoe classic"
    assert keyword_query([], idf, 3) == ""
