//! The reviews of several pull requests in one GraphQL query (an aliased `pullRequest(number:)`
//! per number, [`BATCH`] at a time): the last 50 submitted reviews, and the comments of the
//! last 100 review threads that are not resolved. A review counts when it decided something or
//! says something (a plain approval without words is kept; an empty comment-only review, a
//! pending or a dismissed one are not).

use ao_plugin_api::{
    abi_stable::{
        nonexhaustive_enum::NonExhaustive,
        std_types::{RString, RVec},
    },
    scm::{Review, ReviewComment, ReviewDecision, ReviewFeedback, ReviewsQuery},
    PluginFailure,
};
use serde_json::{json, Value};

use crate::{http::Client, pulls::decision, repository::Slug};

/// Pull requests per query: keeps each query well under GitHub's node limit.
const BATCH: usize = 20;

const FIELDS: &str = "number \
    reviews(last: 50) { nodes { id author { login } state body url } } \
    reviewThreads(last: 100) { nodes { id isResolved path line \
    comments(first: 50) { nodes { id author { login } body path line originalLine url } } } }";

fn text(value: &Value) -> RString {
    RString::from(value.as_str().unwrap_or_default())
}

fn nodes(value: &Value) -> &[Value] {
    value["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub fn reviews(
    client: &Client,
    slug: &Slug,
    query: &ReviewsQuery,
) -> Result<Vec<ReviewFeedback>, PluginFailure> {
    let mut feedback = Vec::with_capacity(query.numbers.len());
    for batch in query.numbers.chunks(BATCH) {
        let fields: String = batch
            .iter()
            .map(|number| format!("pr{number}: pullRequest(number: {number}) {{ {FIELDS} }} "))
            .collect();
        let graphql = format!(
            "query($owner: String!, $name: String!) {{ repository(owner: $owner, name: $name) {{ {fields}}} }}"
        );
        let (data, _missing) =
            client.graphql(&graphql, json!({ "owner": slug.owner, "name": slug.name }))?;
        for number in batch {
            // A pull request GitHub does not know has no reviews to answer.
            feedback.push(read_one(
                *number,
                &data["repository"][format!("pr{number}")],
            ));
        }
    }
    Ok(feedback)
}

fn read_one(number: u64, pull: &Value) -> ReviewFeedback {
    let reviews = nodes(&pull["reviews"])
        .iter()
        .filter_map(|review| {
            let decided = decision(&review["state"]);
            let body = review["body"].as_str().unwrap_or_default();
            let state = review["state"].as_str().unwrap_or_default();
            let counts = matches!(state, "APPROVED" | "CHANGES_REQUESTED")
                || (state == "COMMENTED" && !body.trim().is_empty());
            counts.then(|| Review {
                id: text(&review["id"]),
                author: text(&review["author"]["login"]),
                decision: NonExhaustive::new(match decided {
                    ReviewDecision::ReviewRequired => ReviewDecision::None,
                    other => other,
                }),
                body: RString::from(body),
                url: text(&review["url"]),
            })
        })
        .collect::<RVec<_>>();
    let unresolved = nodes(&pull["reviewThreads"])
        .iter()
        .filter(|thread| thread["isResolved"] == Value::Bool(false))
        .flat_map(|thread| {
            nodes(&thread["comments"]).iter().map(move |comment| {
                let line = [&comment["line"], &thread["line"], &comment["originalLine"]]
                    .into_iter()
                    .find_map(Value::as_u64)
                    .and_then(|line| u32::try_from(line).ok());
                let path = comment["path"]
                    .as_str()
                    .or_else(|| thread["path"].as_str())
                    .unwrap_or_default();
                ReviewComment {
                    thread_id: text(&thread["id"]),
                    comment_id: text(&comment["id"]),
                    path: RString::from(path),
                    line: line.into(),
                    author: text(&comment["author"]["login"]),
                    body: text(&comment["body"]),
                    url: text(&comment["url"]),
                }
            })
        })
        .collect::<RVec<_>>();
    ReviewFeedback {
        number,
        reviews,
        unresolved,
    }
}
