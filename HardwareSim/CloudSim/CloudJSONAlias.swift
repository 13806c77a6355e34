import JSONLines

/// The simulated cloud's JSON is the project's one JSON type (parser and writer in `JSONLines`).
public typealias CloudJSON = JSON
