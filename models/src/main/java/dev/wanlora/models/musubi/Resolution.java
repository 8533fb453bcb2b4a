package dev.wanlora.models.musubi;

/** A pixel size, width first as musubi writes it ({@code resolution = [960, 544]} is 960 wide, 544 high). */
public record Resolution(int width, int height) implements Comparable<Resolution> {

    public Resolution {
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("Resolution: sizes must be positive; got " + width + "x" + height);
        }
    }

    public long area() { return (long) width * height; }

    /** Python tuple order, which musubi uses to sort bucket lists: width, then height. */
    @Override
    public int compareTo(Resolution o) {
        int c = Integer.compare(width, o.width);
        return c != 0 ? c : Integer.compare(height, o.height);
    }

    @Override
    public String toString() { return width + "x" + height; }
}
