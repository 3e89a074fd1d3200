//! The users pull: the HR service's employee list read entry by entry (a bad
//! entry is named and skipped, the rest kept), then upserted into
//! `rappel_attendance_users` by (service, enroll_id) through
//! `store::attendance::users::record_pull`.

use serde_json::Value;

pub use crate::store::attendance::users::User;

/// The users of `{"users":[...]}` and, for each entry skipped, why. `Err`
/// when the body as a whole is not that shape.
pub fn parse(body: &str) -> Result<(Vec<User>, Vec<String>), String> {
    let value: Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "the users list is not JSON ({e}): {}",
            crate::channels::http::excerpt(body)
        )
    })?;
    let entries = value
        .get("users")
        .and_then(Value::as_array)
        .ok_or("the users list has no \"users\" array (expected {\"users\":[{\"enrollid\":...}]})")?;
    let mut users = Vec::with_capacity(entries.len());
    let mut skipped = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match user(entry) {
            Ok(u) => users.push(u),
            Err(why) => {
                let named = match entry.get("enrollid") {
                    Some(id) => format!("users[{i}] (enrollid {id})"),
                    None => format!("users[{i}]"),
                };
                skipped.push(format!("{named}: {why}; skipped"));
            }
        }
    }
    Ok((users, skipped))
}

fn user(entry: &Value) -> Result<User, String> {
    if !entry.is_object() {
        return Err(format!("{entry} is not an object"));
    }
    let integer = |key: &str| -> Result<Option<i64>, String> {
        match entry.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("{key} {n} is not an integer")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{key} {s:?} is not an integer")),
            Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
            Some(other) => Err(format!("{key} {other} is not an integer")),
        }
    };
    let enroll_id = integer("enrollid")?.ok_or("enrollid is missing")?;
    let name = match entry.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("name {other} is not a string")),
    };
    let enabled = match entry.get("is_enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => n.as_i64() == Some(1),
        Some(other) => return Err(format!("is_enabled {other} is not a boolean")),
    };
    Ok(User {
        enroll_id,
        name,
        admin: integer("admin")?.unwrap_or(0),
        enabled,
        weekzone: integer("weekzone")?,
        group: integer("group")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_entry_is_named_and_the_rest_kept() {
        let body = r#"{"users":[
            {"enrollid":123,"name":"Awa","admin":0,"is_enabled":true,"weekzone":1,"group":0,"extra":"ignored"},
            {"enrollid":"abc","name":"Bad"},
            {"name":"No id"},
            {"enrollid":"124","name":"Paul","is_enabled":false},
            7
        ]}"#;
        let (users, skipped) = parse(body).unwrap();
        assert_eq!(
            users,
            vec![
                User {
                    enroll_id: 123,
                    name: "Awa".into(),
                    admin: 0,
                    enabled: true,
                    weekzone: Some(1),
                    group: Some(0)
                },
                User {
                    enroll_id: 124,
                    name: "Paul".into(),
                    admin: 0,
                    enabled: false,
                    weekzone: None,
                    group: None
                },
            ]
        );
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(
            skipped[0].starts_with("users[1] (enrollid \"abc\"): enrollid"),
            "{}",
            skipped[0]
        );
        assert!(
            skipped[1].contains("users[2]") && skipped[1].contains("missing"),
            "{}",
            skipped[1]
        );
        assert!(skipped[2].contains("users[4]"), "{}", skipped[2]);
    }

    #[test]
    fn a_body_of_another_shape_is_an_error() {
        for body in ["<html>Login</html>", "[]", r#"{"users":{}}"#, r#"{"data":[]}"#] {
            assert!(parse(body).is_err(), "{body}");
        }
        assert_eq!(parse(r#"{"users":[]}"#).unwrap().0, vec![]);
    }
}
