fn main() {
    let dir = "/work/shared/testdata/pdq";
    for line in std::fs::read_to_string(format!("{dir}/expected.tsv"))
        .unwrap()
        .lines()
    {
        let f = line.split('\t').next().unwrap();
        let bytes = std::fs::read(format!("{dir}/{f}")).unwrap();
        let pil = std::fs::read(format!("/tmp/pdqraw/{}.rgb", f.replace('/', "_"))).unwrap();
        let img = custodia_pdq::decode_image(&bytes).unwrap().to_rgb8();
        let z = img.as_raw();
        let n = z.iter().zip(&pil).filter(|(x, y)| x != y).count();
        let m = z
            .iter()
            .zip(&pil)
            .map(|(x, y)| (*x as i32 - *y as i32).abs())
            .max()
            .unwrap_or(0);
        println!(
            "{f}: ours vs Pillow/libjpeg-turbo: {n}/{} samples differ, max {m}",
            z.len()
        );
    }
}
