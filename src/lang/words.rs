//! Splits a command line into argv (language labels, grader suites): whitespace separates
//! words, single quotes keep text literally, double quotes allow `\"` and `\\`, a backslash
//! outside quotes escapes the next character. No expansion, no shell.

/// `g++ -O2 -o main main.cpp` -> `["g++", "-O2", "-o", "main", "main.cpp"]`.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => current.push(ch),
                        None => return Err(format!("unterminated ' in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\')) => current.push(ch),
                            Some(ch) => {
                                current.push('\\');
                                current.push(ch);
                            }
                            None => return Err(format!("unterminated \" in {text:?}")),
                        },
                        Some(ch) => current.push(ch),
                        None => return Err(format!("unterminated \" in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(ch) => current.push(ch),
                    None => return Err(format!("trailing \\ in {text:?}")),
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    if words.is_empty() {
        return Err(format!("{text:?} is an empty command"));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_and_quoted_words() {
        assert_eq!(
            split_words("g++ -O2  -o main main.cpp").unwrap(),
            vec!["g++", "-O2", "-o", "main", "main.cpp"]
        );
        assert_eq!(
            split_words(r#"sh -c 'echo "a b"' "x\"y""#).unwrap(),
            vec!["sh", "-c", "echo \"a b\"", "x\"y"]
        );
        assert_eq!(split_words("a '' b").unwrap(), vec!["a", "", "b"]);
        assert!(split_words("  ").is_err());
        assert!(split_words("echo 'oops").is_err());
    }
}
