package io.streamdrift.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * BYTE_LENGTH(bytes): the number of bytes of a BYTES value, NULL for NULL.
 *
 * <p>Flink SQL has no length of a byte string (CHAR_LENGTH takes strings only); the job needs each
 * record's size to cut its Arrow batches by bytes. CHAR_LENGTH(DECODE(payload, 'ISO-8859-1')) made a
 * Java string of every record and encoded it back to UTF-8 to count it.
 */
public class ByteLength extends ScalarFunction {
    public Integer eval(byte[] bytes) {
        return bytes == null ? null : bytes.length;
    }
}
