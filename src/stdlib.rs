//! The standard library, embedded so that an installed `lthc` can `import "stdlib/..."` from
//! anywhere, with no source tree.

/// (import path, text) for every stdlib file.
pub const FILES: &[(&str, &str)] = &[
    (
        "stdlib/networks.lth",
        include_str!("../stdlib/networks.lth"),
    ),
    (
        "stdlib/datasets.lth",
        include_str!("../stdlib/datasets.lth"),
    ),
    ("stdlib/recipes.lth", include_str!("../stdlib/recipes.lth")),
    ("stdlib/pruning.lth", include_str!("../stdlib/pruning.lth")),
    ("stdlib/mnist.lth", include_str!("../stdlib/mnist.lth")),
    ("stdlib/cifar.lth", include_str!("../stdlib/cifar.lth")),
    (
        "stdlib/imagenet.lth",
        include_str!("../stdlib/imagenet.lth"),
    ),
    ("stdlib/paper.lth", include_str!("../stdlib/paper.lth")),
];

/// The text of an embedded stdlib file, by its import path (`stdlib/networks.lth`).
pub fn get(path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("./").unwrap_or(path);
    FILES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}
