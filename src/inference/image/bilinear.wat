;; Bilinear enlarging straight into a model's input tensor, with onnxruntime's arithmetic to the bit.
;;
;; onnxruntime's Resize (mode linear, half_pixel, float NCHW) computes each output value in float32 as
;;   ((dx2·dy2)·X11 + (dx1·dy2)·X21) + (dx2·dy1)·X12 + (dx1·dy1)·X22
;; (products and sums in that order, no fused multiply-add); the enlarging graph then rounds it half to even,
;; clamps it to 0..255, and scales it in double precision: value·scale[c] + shift[c], rounded once to float32.
;; These are the same IEEE operations, four values at a time. The axis tables (source indices and weights) are
;; made in JS (bilinearWasm.ts) as onnxruntime makes them.
;;
;; Compiled by scripts/wasmKernels.mjs into bilinearWasm.generated.ts; do not hand-edit that file.
(module
  (memory (export "memory") 1)

  ;; Each source row of channel $ch read at the output's x positions, as floats:
  ;;   e1[r·W + x] = src[(r·w)·c + x1c[x] + ch],  e2[r·W + x] = src[(r·w)·c + x2c[x] + ch]
  ;; (x1c, x2c: the source columns times the channel count). Done once a source row, not once an output row.
  (func $expand (param $src i32) (param $w i32) (param $h i32) (param $c i32) (param $ch i32) (param $W i32)
                (param $x1c i32) (param $x2c i32) (param $e1 i32) (param $e2 i32)
    (local $r i32) (local $x i32) (local $row i32) (local $to i32) (local $xo i32)
    (block $rowsDone
      (loop $rows
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $h)))
        (local.set $row (i32.add (i32.add (local.get $src) (i32.mul (i32.mul (local.get $r) (local.get $w)) (local.get $c))) (local.get $ch)))
        (local.set $to (i32.shl (i32.mul (local.get $r) (local.get $W)) (i32.const 2)))
        (local.set $x (i32.const 0))
        (block $colsDone
          (loop $cols
            (br_if $colsDone (i32.ge_u (local.get $x) (local.get $W)))
            (local.set $xo (i32.shl (local.get $x) (i32.const 2)))
            (f32.store (i32.add (local.get $e1) (i32.add (local.get $to) (local.get $xo)))
              (f32.convert_i32_u (i32.load8_u (i32.add (local.get $row) (i32.load (i32.add (local.get $x1c) (local.get $xo)))))))
            (f32.store (i32.add (local.get $e2) (i32.add (local.get $to) (local.get $xo)))
              (f32.convert_i32_u (i32.load8_u (i32.add (local.get $row) (i32.load (i32.add (local.get $x2c) (local.get $xo)))))))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $cols)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rows))))

  ;; src: w×h×c bytes (HWC). Axis tables: x1c, x2c (i32 ×W), dx1, dx2 (f32 ×W), y1, y2 (i32 ×H, source rows),
  ;; dy1, dy2 (f32 ×H); scale, shift (f64 ×c). e1, e2: scratch of h·W floats each. out: c×H×W floats (NCHW).
  (func (export "enlarge")
        (param $src i32) (param $w i32) (param $h i32) (param $c i32) (param $W i32) (param $H i32)
        (param $x1c i32) (param $x2c i32) (param $dx1 i32) (param $dx2 i32)
        (param $y1 i32) (param $y2 i32) (param $dy1 i32) (param $dy2 i32)
        (param $scale i32) (param $shift i32) (param $e1 i32) (param $e2 i32) (param $out i32)
    (local $ch i32) (local $y i32) (local $x i32) (local $xo i32) (local $W4 i32) (local $rowBytes i32)
    (local $a1 i32) (local $a2 i32) (local $b1 i32) (local $b2 i32) (local $o i32)
    (local $sdy1 f32) (local $sdy2 f32) (local $sdx1 f32) (local $sdx2 f32) (local $s f32)
    (local $sa f64) (local $sb f64)
    (local $vdy1 v128) (local $vdy2 v128) (local $vdx1 v128) (local $vdx2 v128) (local $v v128)
    (local $va v128) (local $vb v128) (local $lo v128) (local $hi v128)
    (local.set $W4 (i32.and (local.get $W) (i32.const -4)))
    (local.set $rowBytes (i32.shl (local.get $W) (i32.const 2)))
    (block $channelsDone
      (loop $channels
        (br_if $channelsDone (i32.ge_u (local.get $ch) (local.get $c)))
        (call $expand (local.get $src) (local.get $w) (local.get $h) (local.get $c) (local.get $ch) (local.get $W)
                      (local.get $x1c) (local.get $x2c) (local.get $e1) (local.get $e2))
        (local.set $sa (f64.load (i32.add (local.get $scale) (i32.shl (local.get $ch) (i32.const 3)))))
        (local.set $sb (f64.load (i32.add (local.get $shift) (i32.shl (local.get $ch) (i32.const 3)))))
        (local.set $va (f64x2.splat (local.get $sa)))
        (local.set $vb (f64x2.splat (local.get $sb)))
        (local.set $y (i32.const 0))
        (block $rowsDone
          (loop $rows
            (br_if $rowsDone (i32.ge_u (local.get $y) (local.get $H)))
            ;; The expanded rows above (y1) and below (y2) this output row.
            (local.set $a1 (i32.add (local.get $e1) (i32.mul (i32.load (i32.add (local.get $y1) (i32.shl (local.get $y) (i32.const 2)))) (local.get $rowBytes))))
            (local.set $a2 (i32.add (local.get $e2) (i32.mul (i32.load (i32.add (local.get $y1) (i32.shl (local.get $y) (i32.const 2)))) (local.get $rowBytes))))
            (local.set $b1 (i32.add (local.get $e1) (i32.mul (i32.load (i32.add (local.get $y2) (i32.shl (local.get $y) (i32.const 2)))) (local.get $rowBytes))))
            (local.set $b2 (i32.add (local.get $e2) (i32.mul (i32.load (i32.add (local.get $y2) (i32.shl (local.get $y) (i32.const 2)))) (local.get $rowBytes))))
            (local.set $sdy1 (f32.load (i32.add (local.get $dy1) (i32.shl (local.get $y) (i32.const 2)))))
            (local.set $sdy2 (f32.load (i32.add (local.get $dy2) (i32.shl (local.get $y) (i32.const 2)))))
            (local.set $vdy1 (f32x4.splat (local.get $sdy1)))
            (local.set $vdy2 (f32x4.splat (local.get $sdy2)))
            (local.set $o (i32.add (local.get $out) (i32.mul (i32.add (i32.mul (local.get $ch) (local.get $H)) (local.get $y)) (local.get $rowBytes))))
            (local.set $x (i32.const 0))
            ;; Four output values at a time.
            (block $vecDone
              (loop $vec
                (br_if $vecDone (i32.ge_u (local.get $x) (local.get $W4)))
                (local.set $xo (i32.shl (local.get $x) (i32.const 2)))
                (local.set $vdx1 (v128.load (i32.add (local.get $dx1) (local.get $xo))))
                (local.set $vdx2 (v128.load (i32.add (local.get $dx2) (local.get $xo))))
                (local.set $v (f32x4.mul (f32x4.mul (local.get $vdx2) (local.get $vdy2)) (v128.load (i32.add (local.get $a1) (local.get $xo)))))
                (local.set $v (f32x4.add (local.get $v) (f32x4.mul (f32x4.mul (local.get $vdx1) (local.get $vdy2)) (v128.load (i32.add (local.get $a2) (local.get $xo))))))
                (local.set $v (f32x4.add (local.get $v) (f32x4.mul (f32x4.mul (local.get $vdx2) (local.get $vdy1)) (v128.load (i32.add (local.get $b1) (local.get $xo))))))
                (local.set $v (f32x4.add (local.get $v) (f32x4.mul (f32x4.mul (local.get $vdx1) (local.get $vdy1)) (v128.load (i32.add (local.get $b2) (local.get $xo))))))
                ;; Round half to even, clamp to 0..255 (Round, then Clip).
                (local.set $v (f32x4.min (f32x4.max (f32x4.nearest (local.get $v)) (f32x4.splat (f32.const 0))) (f32x4.splat (f32.const 255))))
                ;; value·scale + shift in double, each half rounded once to float32.
                (local.set $lo (f64x2.add (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (local.get $va)) (local.get $vb)))
                (local.set $hi (f64x2.add (f64x2.mul (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))) (local.get $va)) (local.get $vb)))
                (v128.store (i32.add (local.get $o) (local.get $xo))
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero (local.get $lo)) (f32x4.demote_f64x2_zero (local.get $hi))))
                (local.set $x (i32.add (local.get $x) (i32.const 4)))
                (br $vec)))
            ;; The last W mod 4 values, one at a time, with the same operations.
            (block $tailDone
              (loop $tail
                (br_if $tailDone (i32.ge_u (local.get $x) (local.get $W)))
                (local.set $xo (i32.shl (local.get $x) (i32.const 2)))
                (local.set $sdx1 (f32.load (i32.add (local.get $dx1) (local.get $xo))))
                (local.set $sdx2 (f32.load (i32.add (local.get $dx2) (local.get $xo))))
                (local.set $s (f32.mul (f32.mul (local.get $sdx2) (local.get $sdy2)) (f32.load (i32.add (local.get $a1) (local.get $xo)))))
                (local.set $s (f32.add (local.get $s) (f32.mul (f32.mul (local.get $sdx1) (local.get $sdy2)) (f32.load (i32.add (local.get $a2) (local.get $xo))))))
                (local.set $s (f32.add (local.get $s) (f32.mul (f32.mul (local.get $sdx2) (local.get $sdy1)) (f32.load (i32.add (local.get $b1) (local.get $xo))))))
                (local.set $s (f32.add (local.get $s) (f32.mul (f32.mul (local.get $sdx1) (local.get $sdy1)) (f32.load (i32.add (local.get $b2) (local.get $xo))))))
                (local.set $s (f32.min (f32.max (f32.nearest (local.get $s)) (f32.const 0)) (f32.const 255)))
                (f32.store (i32.add (local.get $o) (local.get $xo))
                  (f32.demote_f64 (f64.add (f64.mul (f64.promote_f32 (local.get $s)) (local.get $sa)) (local.get $sb))))
                (local.set $x (i32.add (local.get $x) (i32.const 1)))
                (br $tail)))
            (local.set $y (i32.add (local.get $y) (i32.const 1)))
            (br $rows)))
        (local.set $ch (i32.add (local.get $ch) (i32.const 1)))
        (br $channels))))
)
