//! The Glue table in the SAM template declares the columns the lake writer writes, and the partitions it
//! writes them under.

use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_yaml::from_str(&text).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn table_input(template: &Value) -> &Value {
    &template["Resources"]["LakeEventsTable"]["Properties"]["TableInput"]
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

#[test]
fn the_glue_columns_are_the_lake_columns_in_order_with_their_types() {
    let template = template();
    let columns = table_input(&template)["StorageDescriptor"]["Columns"]
        .as_sequence()
        .expect("the table declares its columns");
    let declared: Vec<(&str, &str)> = columns
        .iter()
        .map(|column| (text(&column["Name"]), text(&column["Type"])))
        .collect();
    let written: Vec<(&str, &str)> = tern_lake::COLUMNS
        .iter()
        .map(|column| (column.name, column.glue_type()))
        .collect();
    assert_eq!(declared, written);
}

#[test]
fn the_partition_keys_and_location_template_match_the_object_keys() {
    let template = template();
    let input = table_input(&template);
    let keys: Vec<&str> = input["PartitionKeys"]
        .as_sequence()
        .expect("partition keys")
        .iter()
        .map(|key| text(&key["Name"]))
        .collect();
    assert_eq!(keys, vec!["workspace", "dt", "hour"]);

    let location = match &input["Parameters"]["storage.location.template"] {
        Value::Tagged(tagged) => text(&tagged.value).to_string(),
        other => panic!("the location template is not a !Sub: {other:?}"),
    };
    // What CloudFormation's !Sub leaves for Athena to fill in, for an event of ws_abc at 05:06 UTC.
    let filled = location
        .replace("s3://${LakeBucket}/", "")
        .replace("${!workspace}", "ws_abc")
        .replace("${!dt}", "2026-03-04")
        .replace("${!hour}", "05");
    let timestamp = "2026-03-04T05:06:07Z".parse().unwrap();
    assert_eq!(filled, tern_lake::partition_prefix("ws_abc", timestamp));
}
