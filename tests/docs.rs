//! The examples in the documentation are programs: the complete ones (those that import what
//! they use) must check without errors.

mod common;

fn complete_examples(doc: &str) -> Vec<String> {
    doc.split("```lth\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|block| {
            block.trim_start().starts_with("import \"stdlib/") && block.contains("experiment ")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn documented_programs_check() {
    let docs = [
        include_str!("../docs/language.md"),
        include_str!("../README.md"),
    ];
    let mut count = 0;
    for doc in docs {
        for example in complete_examples(doc) {
            let (prog, checked, diags) = common::check_one(&example);
            let errors: Vec<String> = diags
                .iter()
                .map(|d| {
                    format!(
                        "{}: {} at {:?}",
                        d.code,
                        d.message,
                        common::span_text(&prog, d)
                    )
                })
                .collect();
            assert!(errors.is_empty(), "{example}\n{errors:#?}");
            assert!(!checked.experiments.is_empty(), "{example}");
            count += 1;
        }
    }
    assert!(count >= 2);
}
