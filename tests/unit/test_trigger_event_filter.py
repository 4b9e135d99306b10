"""FilterCriteria on the Kafka record value, tested against every example of AWS's filtering pages.

Sources (each example below names the one it comes from):
* [KAFKA] "Filtering events from Amazon MSK and self-managed Apache Kafka event sources",
  https://docs.aws.amazon.com/lambda/latest/dg/kafka-filtering.html
* [LAMBDA] "Control which events Lambda sends to your function" (filter rule syntax table, examples),
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html
* [EB] "Comparison operators for use in event patterns in Amazon EventBridge" (Lambda uses the same
  syntax; the wildcard and anything-but variants come from this table),
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html

The Lambda page's examples are written for Kinesis/DynamoDB/SQS (data, body, dynamodb keys); for Kafka
the same rule sits under `value`, the only key a Kafka mapping may filter on.
"""
from __future__ import annotations

import base64
import json

import pytest

from trigger.event_filter import FilterError, RecordFilter


def criteria(*patterns: dict) -> RecordFilter:
    return RecordFilter.from_criteria({"Filters": [{"Pattern": json.dumps(p)} for p in patterns]})


def on_value(rule) -> RecordFilter:
    return criteria({"value": rule})


def js(doc) -> bytes:
    return json.dumps(doc).encode()


# --- [KAFKA] ---------------------------------------------------------------------------------------------

def test_kafka_page_device_id_prefix_ab():
    # GIVEN the page's FilterCriteria, exactly as the CLI takes it (Pattern is an escaped JSON string)
    f = RecordFilter.from_criteria(
        '{ "Filters": [ { "Pattern": "{ \\"value\\" : { \\"device_ID\\" : [ { \\"prefix\\": \\"AB\\" } ] } }" } ] }')
    # THEN the page's producer message matches, and one from another device does not
    message = {"device_ID": "AB1234", "session": {"start_time": "yyyy-mm-ddThh:mm:ss", "duration": 162}}
    assert f.matches(js(message))
    assert not f.matches(js({**message, "device_ID": "CD1234"}))
    assert not f.matches(js({"session": {"duration": 162}}))  # field absent: no match


def test_kafka_page_plain_string_anything_but_error():
    f = on_value([{"anything-but": ["error"]}])
    # The page's example record value, base64 in the event: "Hello, this is a test."
    assert f.matches(base64.b64decode("SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg=="))
    assert not f.matches(b"error")


def test_kafka_page_only_value_can_be_filtered():
    # "Amazon MSK and self-managed Apache Kafka event source mappings only support filtering on the value key."
    with pytest.raises(FilterError, match="value"):
        criteria({"key": ["abc"]})
    with pytest.raises(FilterError, match="value"):
        criteria({"value": {"a": [1]}, "topic": ["t"]})


@pytest.mark.parametrize("value, pattern, expected", [
    # Incoming format / pattern format: only a matching pair is filtered on its content; a mismatch has no
    # value property to filter on, so no value rule matches (see event_filter's docstring).
    (b"plain text", [{"prefix": "plain"}], True),          # plain string / plain-string pattern
    (b"plain text", {"a": [{"exists": False}]}, False),    # plain string / JSON pattern
    (js({"a": 1}), [{"prefix": "{"}], False),               # JSON / plain-string pattern
    (js({"a": 1}), {"a": [1]}, True),                      # JSON / JSON pattern
    ("héllo".encode("utf-16"), [{"anything-but": ["x"]}], False),  # not UTF-8
    (None, [{"anything-but": ["x"]}], False),              # tombstone: no value at all
])
def test_kafka_value_format_against_pattern_format(value, pattern, expected):
    assert on_value(pattern).matches(value) is expected


# --- [LAMBDA] filter rule syntax table ---------------------------------------------------------------------

@pytest.mark.parametrize("rule, matching, not_matching", [
    ({"UserID": [None]}, {"UserID": None}, {"UserID": "u1"}),                                   # Null
    ({"LastName": [""]}, {"LastName": ""}, {"LastName": "Doe"}),                                # Empty
    ({"Name": ["Alice"]}, {"Name": "Alice"}, {"Name": "alice"}),                                # Equals
    ({"Name": [{"equals-ignore-case": "alice"}]}, {"Name": "ALICE"}, {"Name": "Bob"}),         # Equals (ignore case)
    ({"Location": ["New York"], "Day": ["Monday"]},                                              # And
     {"Location": "New York", "Day": "Monday"}, {"Location": "New York", "Day": "Sunday"}),
    ({"PaymentType": ["Credit", "Debit"]}, {"PaymentType": "Debit"}, {"PaymentType": "Cash"}),  # Or
    ({"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]},                                 # Or (multiple fields)
     {"Location": "Paris", "Day": "Monday"}, {"Location": "Paris", "Day": "Sunday"}),
    ({"Weather": [{"anything-but": ["Raining"]}]}, {"Weather": "Sunny"}, {"Weather": "Raining"}),  # Not
    ({"Price": [{"numeric": ["=", 100]}]}, {"Price": 100}, {"Price": 101}),                   # Numeric (equals)
    ({"Price": [{"numeric": [">", 10, "<=", 20]}]}, {"Price": 20}, {"Price": 10}),            # Numeric (range)
    ({"ProductName": [{"exists": True}]}, {"ProductName": "x"}, {"Other": "x"}),              # Exists
    ({"ProductName": [{"exists": False}]}, {"Other": "x"}, {"ProductName": "x"}),             # Does not exist
    ({"Region": [{"prefix": "us-"}]}, {"Region": "us-east-1"}, {"Region": "eu-west-1"}),       # Begins with
    ({"FileName": [{"suffix": ".png"}]}, {"FileName": "map.png"}, {"FileName": "map.jpg"}),    # Ends with
])
def test_lambda_rule_syntax_table(rule, matching, not_matching):
    f = on_value(rule)
    assert f.matches(js(matching))
    assert not f.matches(js(not_matching))


def test_lambda_numbers_match_by_their_representation():
    # "For numbers, Lambda also uses string representation. For example, 300, 300.0, and 3.0e2 are not considered equal."
    f = on_value({"Price": [300]})
    assert f.matches(b'{"Price": 300}')
    assert not f.matches(b'{"Price": 300.0}')
    assert not f.matches(b'{"Price": "300"}')


def test_lambda_example_partition_key_and_location_equals():
    # The page's Kinesis example (partitionKey "1", data.Location "Los Angeles"), with the data rule under value.
    f = on_value({"Location": ["Los Angeles"]})
    assert f.matches(js({"Location": "Los Angeles", "City": "x"}))
    assert not f.matches(js({"Location": "Seattle"}))


def test_lambda_example_temperature_greater_than_50_up_to_60():
    f = on_value({"Temperature": [{"numeric": [">", 50, "<=", 60]}]})
    assert [f.matches(js({"Temperature": t})) for t in (50, 51, 60, 61)] == [False, True, True, False]
    assert not f.matches(js({"Temperature": "55"}))  # a string is not a number


def test_lambda_example_multi_level_keys_id_n_101():
    f = on_value({"Keys": {"Id": {"N": ["101"]}}})
    assert f.matches(js({"Keys": {"Id": {"N": "101"}}, "NewImage": {"Message": {"S": "New item!"}}}))
    assert not f.matches(js({"Keys": {"Id": {"N": "102"}}}))
    assert not f.matches(js({"Keys": {"Id": "101"}}))


def test_lambda_console_example_a_is_1_or_2():
    f = on_value({"a": [1, 2]})
    assert f.matches(js({"a": 2})) and not f.matches(js({"a": 3}))


def test_lambda_filters_are_ored_and_at_most_ten_are_accepted():
    # "Your filters are logically ORed together"; 5 by default, up to 10 with a quota increase.
    f = criteria({"value": {"kind": ["a"]}}, {"value": {"kind": ["b"]}})
    assert f.matches(js({"kind": "a"})) and f.matches(js({"kind": "b"})) and not f.matches(js({"kind": "c"}))
    criteria(*[{"value": {"k": [i]}} for i in range(10)])
    with pytest.raises(FilterError, match="filters"):
        criteria(*[{"value": {"k": [i]}} for i in range(11)])


def test_a_rule_on_an_array_matches_when_any_element_does():
    f = on_value({"tags": ["urgent"]})
    assert f.matches(js({"tags": ["late", "urgent"]})) and not f.matches(js({"tags": ["late"]}))


# --- [EB] operators Lambda shares with EventBridge -------------------------------------------------------

@pytest.mark.parametrize("rule, matching, not_matching", [
    ({"state": [{"anything-but": "initializing"}]}, "running", "initializing"),
    ({"Region": [{"anything-but": {"prefix": "us-"}}]}, "eu-west-1", "us-east-1"),
    ({"FileName": [{"anything-but": {"suffix": ".png"}}]}, "a.jpg", "a.png"),
    ({"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}, "running", "INITIALIZING"),
    ({"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}, "/usr/bin/x", "/usr/lib/x"),
    ({"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}, "EventBridge", "lambda"),
    ({"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}, "MAP.PNG", "map.jpg"),
    ({"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]},
     "arn:aws:events:us-east-1:123456789012:event-bus/default", "arn:aws:events:eu-west-1:123456789012:event-bus/x"),
    ({"name": [{"wildcard": "a\\*b"}]}, "a*b", "axxb"),
])
def test_eventbridge_operators(rule, matching, not_matching):
    (field,) = rule
    f = on_value(rule)
    assert f.matches(js({field: matching}))
    assert not f.matches(js({field: not_matching}))


@pytest.mark.parametrize("pattern, message", [
    ("{not json", "not JSON"),
    (json.dumps({"value": {"a": []}}), "empty array"),
    (json.dumps({"value": {"a": [{"numeric": ["!=", 1]}]}}), "numeric"),
    (json.dumps({"value": {"a": [{"numeric": [">", 6e9]}]}}), "5.0e9"),
    (json.dumps({"value": {"a": [{"wildcard": "a**b"}]}}), "consecutive"),
    (json.dumps({"value": {"a": [{"regex": "x"}]}}), "unknown operator"),
    (json.dumps({"value": "x"}), "object"),
    ("{" + " " * 4100 + "}", "4096"),
])
def test_invalid_patterns_are_refused_at_start_naming_the_problem(pattern, message):
    with pytest.raises(FilterError, match=message):
        RecordFilter.from_criteria({"Filters": [{"Pattern": pattern}]})


def test_no_criteria_means_no_filter():
    assert RecordFilter.from_criteria(None) is None
    assert RecordFilter.from_criteria({}) is None
    assert RecordFilter.from_criteria({"Filters": []}) is None
