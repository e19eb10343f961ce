// Prints Java's answers for X.500 names as Rust test vectors, for src/tls/dn.rs.
//
// Run with Java 17 (single-file launch, no javac):
//   java tests/tools/X500Vectors.java tests/tools/x500-inputs.txt
// Each input line is either
//   der <hex>     a DER-encoded Name: prints ("<hex>", "<getName()>"), or an error comment
//   str <text>    a string for new X500Principal(text): prints (<text>, true|false) for
//                 valid_dn, and when accepted also the name's DER and getName() as above
// Output lines are Rust tuple literals, to paste into the vectors in src/tls/dn.rs.
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import javax.security.auth.x500.X500Principal;

public class X500Vectors {
    static String rust(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); ) {
            int c = s.codePointAt(i);
            i += Character.charCount(c);
            if (c == '"' || c == '\\') b.append('\\').append((char) c);
            else if (c >= 0x20 && c < 0x7f) b.append((char) c);
            else b.append(String.format("\\u{%x}", c));
        }
        return b.append('"').toString();
    }

    static String hex(byte[] d) {
        StringBuilder b = new StringBuilder();
        for (byte x : d) b.append(String.format("%02x", x));
        return b.toString();
    }

    static byte[] unhex(String h) {
        byte[] d = new byte[h.length() / 2];
        for (int i = 0; i < d.length; i++) d[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        return d;
    }

    public static void main(String[] args) throws Exception {
        StringBuilder names = new StringBuilder("// subject_dn: (Name DER, getName())\n");
        StringBuilder valid = new StringBuilder("// valid_dn: (string, new X500Principal accepts it)\n");
        for (String line : Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8)) {
            if (line.startsWith("der ")) {
                String h = line.substring(4).trim();
                try {
                    X500Principal p = new X500Principal(unhex(h));
                    names.append("(\"" + h + "\", " + rust(p.getName()) + "),\n");
                } catch (Exception e) {
                    names.append("// refused by Java: " + h + ": " + e + "\n");
                }
            } else if (line.startsWith("str ")) {
                String s = line.substring(4);
                try {
                    X500Principal p = new X500Principal(s);
                    valid.append("(" + rust(s) + ", true),\n");
                    // Re-read from the encoding, as from a certificate: a principal made from a
                    // string prints its AVAs in the string's order, not the (sorted) DER's.
                    X500Principal q = new X500Principal(p.getEncoded());
                    names.append("(\"" + hex(q.getEncoded()) + "\", " + rust(q.getName()) + "),\n");
                } catch (Exception e) {
                    valid.append("(" + rust(s) + ", false),\n");
                }
            }
        }
        System.out.print(names);
        System.out.print(valid);
    }
}
