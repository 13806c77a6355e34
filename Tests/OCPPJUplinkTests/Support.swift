import Glibc

/// A fresh temporary directory.
func temporaryDirectory(_ name: String) -> String {
    var template = Array("/tmp/pb-\(name)-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!)
}
