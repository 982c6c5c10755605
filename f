t
t
t
