package dev.wanlora.models.musubi;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.io.SafeTensors.TensorInfo;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.nio.file.Path;

/**
 * One training item: a latent cache file and the text-encoder cache it pairs with, as discovered from their headers
 * (no tensor data is read until {@link #readLatents()} / {@link #readText()}).
 *
 * @param itemKey        the media name the caches were made from: for a video the name without the frame range,
 *                       so every clip of one video shares one text cache
 * @param latentFile     {@code {itemKey}_{W:04d}x{H:04d}_wan.safetensors}, or for a video clip
 *                       {@code {itemKey}_{start:05d}-{count:03d}_{W:04d}x{H:04d}_wan.safetensors}
 * @param textFile       {@code {itemKey}_wan_te.safetensors}
 * @param originalWidth  W from the file name: the media's original size, not the bucket's
 * @param originalHeight H from the file name
 * @param frameStart     first frame of the clip in the (fps-converted) video; 0 for an image
 * @param frameCount     clip length in frames from the file name; 1 for an image
 * @param latentKey      {@code latents_{F}x{H}x{W}_{dtype}}
 * @param latentShape    [16, F, H, W], F = (frameCount-1)/4+1, H and W the bucket size / 8
 * @param latentDType    usually BF16
 * @param textKey        {@code varlen_t5_{dtype}}
 * @param textShape      [L, 4096], L ≤ 512 the prompt's token count including EOS
 * @param textDType      usually BF16
 */
public record CacheItem(String itemKey, Path latentFile, Path textFile, int originalWidth, int originalHeight,
                        int frameStart, int frameCount, String latentKey, Shape latentShape, DType latentDType,
                        String textKey, Shape textShape, DType textDType) {

    /** The latent x0, [16, F, H, W], widened to float. */
    public LoadedTensor readLatents() {
        return read(latentFile, latentKey, latentShape, latentDType, "wan_cache_latents.py");
    }

    /** The umT5 context, [L, 4096], widened to float; the trainer zero-pads it to 512 rows. */
    public LoadedTensor readText() {
        return read(textFile, textKey, textShape, textDType, "wan_cache_text_encoder_outputs.py");
    }

    private static LoadedTensor read(Path file, String key, Shape shape, DType dtype, String script) {
        try (SafeTensors st = SafeTensors.open(file)) {
            if (!st.contains(key)) {
                throw new DatasetException(file + ": key " + key + " is gone since the dataset was scanned; expected it "
                        + "unchanged during training. hint: do not re-run musubi's " + script + " while training");
            }
            TensorInfo info = st.info(key);
            if (!info.shape().equals(shape) || info.dtype() != dtype) {
                throw new DatasetException(file + ": key " + key + " is now " + info.dtype() + " "
                        + CacheDataset.brackets(info.shape()) + ", expected " + dtype + " " + CacheDataset.brackets(shape)
                        + " as when the dataset was scanned. hint: do not re-run musubi's " + script + " while training");
            }
            float[] values = st.floats(key);
            for (int i = 0; i < values.length; i++) {
                if (!Float.isFinite(values[i])) {
                    throw new DatasetException(file + ": key " + key + " holds " + values[i] + " at element " + i
                            + "; expected finite values, a NaN or Inf in a cache makes the loss non-finite. hint: re-run"
                            + " musubi's " + script + " for this item, or pass --skip_bad_items to leave out every cache"
                            + " holding NaN or Inf");
                }
            }
            return new LoadedTensor(shape, values);
        } catch (SafeTensorsException e) {
            throw new DatasetException(e.getMessage());
        }
    }
}
