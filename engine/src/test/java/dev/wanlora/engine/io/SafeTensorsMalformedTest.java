package dev.wanlora.engine.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.wanlora.engine.io.SafeTensorsFiles.raw;
import static org.junit.jupiter.api.Assertions.*;

/** Every class of malformed file gives one SafeTensorsException line naming the file, the problem and a hint. */
class SafeTensorsMalformedTest {

    @TempDir
    Path tmp;

    private static final String CORRUPT = ". hint: the file is corrupt or was written by a non-conforming tool";

    private String openError(Path f) {
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(f).close());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        assertTrue(e.getMessage().startsWith(f.toString() + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(". hint: "), e.getMessage());
        return e.getMessage().substring(f.toString().length() + 2);
    }

    /** A file of one header (with ' for ") and {@code dataBytes} zero bytes of data. */
    private String headerError(String header, int dataBytes) throws IOException {
        return openError(raw(tmp.resolve("bad.safetensors"), header.replace('\'', '"'), new byte[dataBytes]));
    }

    @Test
    void shorterThanLengthField() throws IOException {
        Path f = Files.write(tmp.resolve("short.safetensors"), new byte[5]);
        assertEquals("5 bytes, shorter than the 8-byte header length field. hint: the file is truncated or not"
                + " safetensors; download or write it again", openError(f));
    }

    @Test
    void headerLengthBeyondFile() throws IOException {
        Path f = raw(tmp.resolve("trunc.safetensors"), 1000, "{}".getBytes(StandardCharsets.US_ASCII), new byte[0]);
        assertEquals("header length 1000 is larger than the file (10 bytes). hint: the file is truncated or not"
                + " safetensors; download or write it again", openError(f));
        // A length field above 2^63 (negative as a Java long) is reported unsigned.
        Path g = raw(tmp.resolve("huge.safetensors"), -1L, new byte[0], new byte[0]);
        assertTrue(openError(g).startsWith("header length 18446744073709551615 is larger than the file (8 bytes)"));
    }

    @Test
    void headerLengthBeyondLimit() throws IOException {
        // A sparse 200 MB file (no disk blocks written) whose length field claims a 150 MB header.
        Path f = raw(tmp.resolve("sparse.safetensors"), 150_000_000L, new byte[0], new byte[0]);
        try (RandomAccessFile r = new RandomAccessFile(f.toFile(), "rw")) {
            r.setLength(200_000_000L);
        }
        assertEquals("header length 150000000 is larger than the limit of 100000000 bytes. hint: the file is corrupt"
                + " or not safetensors", openError(f));
    }

    @Test
    void headerNotUtf8() throws IOException {
        byte[] header = {'{', '"', (byte) 0xc3, (byte) 0x28, '"', ':', '1', '}'}; // 0xc3 0x28: broken 2-byte sequence
        Path f = raw(tmp.resolve("latin.safetensors"), header, new byte[0]);
        assertTrue(openError(f).startsWith("header is not valid UTF-8 ("), openError(f));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "{'a': |header is not valid JSON (Unexpected end-of-input",
            "{'a':{}} {'b':{}}|header is not valid JSON (Trailing token",
            "{'a':{'dtype':'F32','shape':[],'data_offsets':[0,4]},'a':{'dtype':'F32','shape':[],'data_offsets':[0,4]}}"
                    + "|header is not valid JSON (Duplicate field 'a'",
            "[1,2]|header is a JSON ARRAY, expected a JSON object. hint: the file is corrupt or not safetensors",
            "''|header is a JSON STRING, expected a JSON object. hint: the file is corrupt or not safetensors",
    })
    void headerNotAJsonObject(String header, String expectedStart) throws IOException {
        String msg = headerError(header, 0);
        assertTrue(msg.startsWith(expectedStart), msg);
    }

    @Test
    void emptyHeader() throws IOException {
        assertEquals("header is empty, expected a JSON object. hint: the file is corrupt or not safetensors",
                headerError("", 0));
    }

    @Test
    void metadataNotStrings() throws IOException {
        assertEquals("__metadata__ is a JSON ARRAY, expected an object of strings. hint: the file was written by a"
                + " non-conforming tool", headerError("{'__metadata__':[]}", 0));
        assertEquals("__metadata__ value 'epoch' is 3, expected a string. hint: the file was written by a"
                + " non-conforming tool", headerError("{'__metadata__':{'format':'pt','epoch':3}}", 0));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "{'t':[1]}|tensor 't' is [1], expected an object with dtype, shape and data_offsets",
            "{'t':{'dtype':'F33','shape':[1],'data_offsets':[0,4]}}|tensor 't' has unknown dtype \"F33\", expected one of"
                    + " [F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL]",
            "{'t':{'shape':[1],'data_offsets':[0,4]}}|tensor 't' has unknown dtype (missing), expected one of"
                    + " [F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL]",
            "{'t':{'dtype':'F32','shape':4,'data_offsets':[0,4]}}|tensor 't' has shape 4, expected an array of"
                    + " non-negative integers",
            "{'t':{'dtype':'F32','shape':[2,-1],'data_offsets':[0,4]}}|tensor 't' has shape [2,-1], expected an array of"
                    + " non-negative integers",
            "{'t':{'dtype':'F32','shape':[2.0],'data_offsets':[0,8]}}|tensor 't' has shape [2.0], expected an array of"
                    + " non-negative integers",
            "{'t':{'dtype':'F32','data_offsets':[0,4]}}|tensor 't' has shape (missing), expected an array of"
                    + " non-negative integers",
            "{'t':{'dtype':'F32','shape':[99999999999999999999],'data_offsets':[0,4]}}|tensor 't' has shape"
                    + " [99999999999999999999], expected an array of non-negative integers",
            "{'t':{'dtype':'F32','shape':[4294967296,4294967296],'data_offsets':[0,4]}}|tensor 't' has shape"
                    + " (4294967296,4294967296), whose byte size overflows a 64-bit integer",
            "{'t':{'dtype':'F32','shape':[4611686018427387904],'data_offsets':[0,4]}}|tensor 't' has shape"
                    + " (4611686018427387904), whose byte size overflows a 64-bit integer",
            "{'t':{'dtype':'F32','shape':[1],'data_offsets':[0]}}|tensor 't' has data_offsets [0], expected [begin, end]"
                    + " with 0 <= begin <= end",
            "{'t':{'dtype':'F32','shape':[1],'data_offsets':[8,4]}}|tensor 't' has data_offsets [8,4], expected"
                    + " [begin, end] with 0 <= begin <= end",
            "{'t':{'dtype':'F32','shape':[1],'data_offsets':[-4,0]}}|tensor 't' has data_offsets [-4,0], expected"
                    + " [begin, end] with 0 <= begin <= end",
            "{'t':{'dtype':'F32','shape':[1],'data_offsets':'0-4'}}|tensor 't' has data_offsets \"0-4\", expected"
                    + " [begin, end] with 0 <= begin <= end",
            "{'t':{'dtype':'F32','shape':[3],'data_offsets':[0,8]}}|tensor 't' spans 8 bytes, expected 12"
                    + " (3 elements of F32 (3))",
            "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}"
                    + "|tensors 'a' [0, 8) and 'b' [4, 12) overlap in the data section",
            "{'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]},'a':{'dtype':'BF16','shape':[3],'data_offsets':[0,6]}}"
                    + "|tensors 'a' [0, 6) and 'b' [4, 12) overlap in the data section",
    })
    void badTensorEntry(String header, String expected) throws IOException {
        assertEquals(expected + CORRUPT, headerError(header, 16));
    }

    @Test
    void offsetsOutsideDataSection() throws IOException {
        assertEquals("tensor 't' has data_offsets [8, 12] outside the data section of 10 bytes. hint: the file is"
                + " truncated; download or write it again",
                headerError("{'t':{'dtype':'F32','shape':[1],'data_offsets':[8,12]}}", 10));
    }

    @Test
    void controlCharactersInKeysStayOnOneLine() throws IOException {
        String msg = headerError("{'a\\nb':{'dtype':'F32','shape':[1],'data_offsets':[0,8]}}", 16);
        assertTrue(msg.startsWith("tensor 'a\\u000ab' spans 8 bytes"), msg);
    }

    @Test
    void emptyTensorsNeverOverlap() throws IOException {
        // A zero-element tensor at an offset inside another holds no bytes, so it cannot alias anything.
        Path f = raw(tmp.resolve("empty.safetensors"), ("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},"
                + "'e':{'dtype':'F32','shape':[0,5],'data_offsets':[4,4]}}").replace('\'', '"'), new byte[8]);
        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(0, st.floats("e").length);
            assertEquals(0, st.data("e").byteSize());
        }
    }

    @Test
    void missingFile() {
        Path f = tmp.resolve("nope.safetensors");
        assertEquals("file not found. hint: check the path", openError(f));
    }
}
